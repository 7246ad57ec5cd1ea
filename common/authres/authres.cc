// Implementation of the Authentication-Results parser and builder (see authres.h).
#include "common/authres/authres.h"

#include <cctype>

#include "common/util/strings.h"

namespace mxguard::common::authres {
namespace {

bool is_tspecial(char c) {
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case '@':
    case ',':
    case ';':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '=':
      return true;
    default:
      return false;
  }
}

// RFC 2045 token character.
bool is_token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && !is_tspecial(c);
}

// RFC 5322 atext, plus '.' and '@' so that dot-atoms and addr-specs read as one pvalue.
bool is_pvalue_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
    case '.':
    case '@':
      return true;
    default:
      return u >= 0x80;  // RFC 6532 UTF-8 in addresses
  }
}

bool is_keyword_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

using mxguard::common::util::lower;

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  std::size_t pos() const { return i_; }
  void reset(std::size_t p) { i_ = p; }

  // Skips white space and comments; the text of the first comment seen goes to *comment.
  bool skip_cfws(std::string* comment = nullptr) {
    while (!at_end()) {
      char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++i_;
      } else if (c == '(') {
        std::size_t start = i_;
        if (!skip_comment()) return false;
        if (comment && comment->empty()) *comment = std::string(s_.substr(start, i_ - start));
      } else {
        break;
      }
    }
    return true;
  }

  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }

  std::string take_while(bool (*pred)(char)) {
    std::size_t start = i_;
    while (!at_end() && pred(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }

  // RFC 5322 quoted-string; returns false on an unterminated string.
  bool quoted_string(std::string& out) {
    if (!eat('"')) return false;
    out.clear();
    while (!at_end()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (at_end()) return false;
        c = s_[i_++];
      }
      if (c == '\r' || c == '\n') continue;  // folding inside a quoted string
      out.push_back(c);
    }
    return false;
  }

 private:
  bool skip_comment() {
    int depth = 0;
    while (!at_end()) {
      char c = s_[i_++];
      if (c == '\\') {
        if (at_end()) return false;
        ++i_;
      } else if (c == '(') {
        if (++depth > 32) return false;  // bounded nesting
      } else if (c == ')') {
        if (--depth == 0) return true;
      }
    }
    return false;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// value = token / quoted-string
bool read_value(Cursor& c, std::string& out) {
  if (c.peek() == '"') return c.quoted_string(out);
  out = c.take_while(is_token_char);
  return !out.empty();
}

bool read_pvalue(Cursor& c, std::string& out) {
  if (c.peek() == '"') return c.quoted_string(out);
  out = c.take_while(is_pvalue_char);
  return !out.empty();
}

std::string_view strip_field_name(std::string_view v) {
  static constexpr std::string_view kName = "authentication-results:";
  if (v.size() >= kName.size() && lower(v.substr(0, kName.size())) == kName) {
    v.remove_prefix(kName.size());
  }
  return v;
}

bool fail(std::string* error, std::string msg, std::size_t pos) {
  if (error) *error = msg + " at offset " + std::to_string(pos);
  return false;
}

bool parse_resinfo(Cursor& c, Result& r, std::string* error) {
  // methodspec
  if (!c.skip_cfws()) return fail(error, "unterminated comment", c.pos());
  std::string method = c.take_while(is_keyword_char);
  if (method.empty()) return fail(error, "expected a method", c.pos());
  r.method = lower(method);
  if (!c.skip_cfws()) return fail(error, "unterminated comment", c.pos());
  if (c.eat('/')) {
    c.skip_cfws();
    r.method_version =
        c.take_while([](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; });
    if (r.method_version.empty()) return fail(error, "expected a method version", c.pos());
    c.skip_cfws();
  }
  if (!c.eat('=')) return fail(error, "expected '='", c.pos());
  c.skip_cfws();
  std::string result = c.take_while(is_keyword_char);
  if (result.empty()) return fail(error, "expected a result", c.pos());
  r.result = lower(result);
  if (!c.skip_cfws(&r.comment)) return fail(error, "unterminated comment", c.pos());

  // reasonspec and propspecs, until ';' or the end.
  while (!c.at_end() && c.peek() != ';') {
    std::size_t start = c.pos();
    std::string word = c.take_while(is_keyword_char);
    if (word.empty()) return fail(error, "unexpected character", c.pos());
    c.skip_cfws();
    if (c.eat('.')) {
      c.skip_cfws();
      std::string prop = c.take_while(is_keyword_char);
      if (prop.empty()) return fail(error, "expected a property name", c.pos());
      c.skip_cfws();
      if (!c.eat('=')) return fail(error, "expected '='", c.pos());
      c.skip_cfws();
      std::string value;
      if (!read_pvalue(c, value)) return fail(error, "expected a property value", c.pos());
      r.properties.push_back(Property{lower(word), lower(prop), value});
    } else if (c.eat('=')) {
      c.skip_cfws();
      std::string value;
      if (!read_pvalue(c, value)) return fail(error, "expected a value", start);
      // reason=…; any other name=value without a ptype is not RFC 8601, and is skipped.
      if (lower(word) == "reason" && r.reason.empty() && r.properties.empty()) r.reason = value;
    } else {
      return fail(error, "expected '.' or '='", c.pos());
    }
    std::size_t before = c.pos();
    if (!c.skip_cfws()) return fail(error, "unterminated comment", c.pos());
    if (!c.at_end() && c.peek() != ';' && c.pos() == before) {
      return fail(error, "expected white space or ';'", c.pos());
    }
  }
  return true;
}

}  // namespace

const std::string* Result::property(std::string_view type, std::string_view name) const {
  for (const auto& p : properties) {
    if (p.type == type && p.name == name) return &p.value;
  }
  return nullptr;
}

std::optional<Header> parse(std::string_view value, std::string* error) {
  Cursor c(strip_field_name(value));
  Header h;
  if (!c.skip_cfws()) return fail(error, "unterminated comment", c.pos()), std::nullopt;
  if (!read_value(c, h.authserv_id)) {
    fail(error, "expected an authserv-id", c.pos());
    return std::nullopt;
  }
  c.skip_cfws();
  if (std::isdigit(static_cast<unsigned char>(c.peek()))) {
    std::string digits =
        c.take_while([](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; });
    if (digits.size() > 3) return fail(error, "bad version", c.pos()), std::nullopt;
    h.version = std::stoi(digits);
    c.skip_cfws();
  }
  if (c.at_end()) return fail(error, "expected ';'", c.pos()), std::nullopt;
  bool first = true;
  while (!c.at_end()) {
    if (!c.eat(';')) return fail(error, "expected ';'", c.pos()), std::nullopt;
    c.skip_cfws();
    if (first) {
      std::size_t save = c.pos();
      std::string word = c.take_while(is_keyword_char);
      c.skip_cfws();
      if (lower(word) == "none" && c.at_end()) return h;
      c.reset(save);
    }
    first = false;
    Result r;
    if (!parse_resinfo(c, r, error)) return std::nullopt;
    h.results.push_back(std::move(r));
  }
  return h;
}

std::optional<std::string> authserv_id(std::string_view value) {
  Cursor c(strip_field_name(value));
  if (!c.skip_cfws()) return std::nullopt;
  std::string id;
  if (!read_value(c, id)) return std::nullopt;
  return id;
}

bool claims_authserv_id(std::string_view value, std::string_view ours) {
  auto id = authserv_id(value);
  if (!id) return false;
  std::string a = lower(*id);
  std::string b = lower(ours);
  // "example.com." and "example.com" are the same name.
  if (!a.empty() && a.back() == '.') a.pop_back();
  if (!b.empty() && b.back() == '.') b.pop_back();
  return a == b;
}

namespace {

std::string quote(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\r' || c == '\n') continue;
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// authserv-id and reason are RFC 2045 "value": a token or a quoted-string.
std::string quote_value_if_needed(std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) plain = plain && is_token_char(c);
  return plain ? std::string(v) : quote(v);
}

}  // namespace

std::string quote_if_needed(std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (!is_pvalue_char(c) || c == '=') plain = false;
  }
  return plain ? std::string(v) : quote(v);
}

Builder& Builder::add(Result r) {
  results_.push_back(std::move(r));
  return *this;
}

std::string Builder::value(bool fold) const {
  std::string out = quote_value_if_needed(authserv_id_);
  if (results_.empty()) return out + "; none";
  for (const auto& r : results_) {
    out += fold ? ";\n\t" : "; ";
    out += r.method;
    if (!r.method_version.empty()) out += "/" + r.method_version;
    out += "=" + r.result;
    if (!r.comment.empty()) {
      // Our comments are plain text; parentheses and backslashes inside are dropped so a
      // comment can never end early or swallow the rest of the header.
      std::string_view text = r.comment;
      if (text.size() >= 2 && text.front() == '(' && text.back() == ')') {
        text = text.substr(1, text.size() - 2);
      }
      std::string comment;
      for (char ch : text) {
        if (ch == '\r' || ch == '\n' || ch == '(' || ch == ')' || ch == '\\') continue;
        comment.push_back(ch);
      }
      out += " (" + comment + ")";
    }
    if (!r.reason.empty()) out += " reason=" + quote_value_if_needed(r.reason);
    for (const auto& p : r.properties) {
      out += " " + p.type + "." + p.name + "=" + quote_if_needed(p.value);
    }
  }
  return out;
}

}  // namespace mxguard::common::authres
