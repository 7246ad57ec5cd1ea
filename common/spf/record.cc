// Implementation of the SPF record parser (see record.h).
#include "common/spf/record.h"

#include <cctype>
#include <charconv>

#include "common/util/strings.h"

namespace mxguard::common::spf {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

using mxguard::common::util::lower;

bool fail(std::string* problem, std::string why) {
  if (problem) *problem = std::move(why);
  return false;
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool is_toplabel(std::string_view l) {
  if (l.empty()) return false;
  bool has_alpha = false, has_hyphen = false;
  for (char c : l) {
    if (is_alpha(c))
      has_alpha = true;
    else if (c == '-')
      has_hyphen = true;
    else if (!is_digit(c))
      return false;
  }
  if (!has_hyphen) return has_alpha;
  return is_alnum(l.front()) && is_alnum(l.back());
}

bool is_delimiter(char c) {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

// ip4-cidr-length / ip6-cidr-length: "0" or no leading zero, within max.
bool parse_cidr(std::string_view digits, int max, int& out) {
  if (digits.empty() || digits.size() > 3) return false;
  if (digits.size() > 1 && digits.front() == '0') return false;
  for (char c : digits) {
    if (!is_digit(c)) return false;
  }
  int v = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (v > max) return false;
  out = v;
  return true;
}

// Splits a trailing dual-cidr-length ("/24", "//64", "/24//64") off `arg`.
bool split_dual_cidr(std::string_view& arg, int& c4, int& c6, std::string* problem) {
  auto take_suffix = [&](std::string_view sep, int max, int& out) -> int {
    // Returns 1 if taken, 0 if absent, -1 on a malformed length.
    auto pos = arg.rfind(sep);
    if (pos == std::string_view::npos) return 0;
    std::string_view digits = arg.substr(pos + sep.size());
    if (digits.empty() || digits.find('/') != std::string_view::npos) return 0;
    bool all_digits = true;
    for (char c : digits) all_digits = all_digits && is_digit(c);
    if (!all_digits) return 0;
    if (sep == "/" && pos > 0 && arg[pos - 1] == '/') return 0;  // that is "//N"
    if (!parse_cidr(digits, max, out)) return -1;
    arg = arg.substr(0, pos);
    return 1;
  };
  if (take_suffix("//", 128, c6) < 0) return fail(problem, "bad ip6-cidr-length");
  if (take_suffix("/", 32, c4) < 0) return fail(problem, "bad ip4-cidr-length");
  return true;
}

}  // namespace

bool MacroString::uses(char letter) const {
  for (const auto& p : parts) {
    if (!p.literal && p.letter == letter) return true;
  }
  return false;
}

bool Mechanism::queries_dns() const {
  return kind == Kind::kInclude || kind == Kind::kA || kind == Kind::kMx || kind == Kind::kPtr ||
         kind == Kind::kExists;
}

std::optional<MacroString> parse_macro_string(std::string_view text, bool domain_spec,
                                              bool explanation, std::string* problem) {
  MacroString ms;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) ms.parts.push_back(MacroPart{true, std::move(literal)});
    literal.clear();
  };
  bool ends_with_macro = false;
  for (std::size_t i = 0; i < text.size();) {
    char c = text[i];
    auto u = static_cast<unsigned char>(c);
    if (c == '%') {
      if (i + 1 >= text.size()) return fail(problem, "lone '%' in macro string"), std::nullopt;
      char n = text[i + 1];
      if (n == '%' || n == '_' || n == '-') {
        literal += n == '%' ? "%" : (n == '_' ? " " : "%20");
        i += 2;
        ends_with_macro = true;
        continue;
      }
      if (n != '{') return fail(problem, "bad macro '%" + std::string(1, n) + "'"), std::nullopt;
      auto close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        return fail(problem, "unterminated macro"), std::nullopt;
      }
      std::string_view body = text.substr(i + 2, close - i - 2);
      if (body.empty()) return fail(problem, "empty macro"), std::nullopt;
      MacroPart p;
      p.literal = false;
      char letter = body[0];
      p.url_escape = std::isupper(static_cast<unsigned char>(letter)) != 0;
      p.letter = static_cast<char>(std::tolower(static_cast<unsigned char>(letter)));
      static constexpr std::string_view kLetters = "slodiphcrtv";
      if (kLetters.find(p.letter) == std::string_view::npos) {
        return fail(problem, "unknown macro letter '" + std::string(1, letter) + "'"), std::nullopt;
      }
      if (!explanation && (p.letter == 'c' || p.letter == 'r' || p.letter == 't')) {
        return fail(problem, "macro letter '" + std::string(1, letter) +
                                 "' is allowed only in explanations"),
               std::nullopt;
      }
      std::size_t j = 1;
      std::size_t digits_start = j;
      while (j < body.size() && is_digit(body[j])) ++j;
      if (j > digits_start) {
        std::string_view d = body.substr(digits_start, j - digits_start);
        if (d.size() > 3) return fail(problem, "macro digit transformer too large"), std::nullopt;
        std::from_chars(d.data(), d.data() + d.size(), p.digits);
        if (p.digits == 0) return fail(problem, "macro digit transformer is zero"), std::nullopt;
      }
      if (j < body.size() && (body[j] == 'r' || body[j] == 'R')) {
        p.reverse = true;
        ++j;
      }
      for (; j < body.size(); ++j) {
        if (!is_delimiter(body[j])) {
          return fail(problem, "bad macro delimiter '" + std::string(1, body[j]) + "'"),
                 std::nullopt;
        }
        p.delimiters.push_back(body[j]);
      }
      flush();
      ms.parts.push_back(std::move(p));
      i = close + 1;
      ends_with_macro = true;
      continue;
    }
    bool ok = (u >= 0x21 && u <= 0x7e) || (explanation && c == ' ');
    if (!ok) return fail(problem, "invalid character in macro string"), std::nullopt;
    literal.push_back(c);
    ends_with_macro = false;
    ++i;
  }
  flush();
  if (domain_spec && !ends_with_macro) {
    // domain-end = "." toplabel [ "." ] when the spec does not end in a macro.
    const std::string& lit = ms.parts.empty() ? std::string() : ms.parts.back().text;
    std::string_view tail = lit;
    if (!tail.empty() && tail.back() == '.') tail.remove_suffix(1);
    auto dot = tail.rfind('.');
    if (dot == std::string_view::npos || !is_toplabel(tail.substr(dot + 1))) {
      return fail(problem, "domain-spec must end in a macro or a valid top label"), std::nullopt;
    }
  }
  if (domain_spec && ms.parts.empty()) return fail(problem, "empty domain-spec"), std::nullopt;
  return ms;
}

bool is_spf_record(std::string_view text) {
  if (text.size() < 6) return false;
  if (lower(text.substr(0, 6)) != "v=spf1") return false;
  return text.size() == 6 || text[6] == ' ';
}

bool valid_dns_name(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  if (d.empty() || d.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    auto dot = d.find('.', start);
    std::string_view label = d.substr(start, dot == std::string_view::npos ? d.npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool valid_domain(std::string_view d) {
  if (!valid_dns_name(d)) return false;
  if (d.back() == '.') d.remove_suffix(1);
  auto dot = d.rfind('.');
  if (dot == std::string_view::npos) return false;  // not multi-label
  for (char c : d) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return is_toplabel(d.substr(dot + 1));
}

std::optional<Record> parse_record(std::string_view text, std::string* problem) {
  if (!is_spf_record(text)) return fail(problem, "not an SPF record"), std::nullopt;
  Record rec;
  std::string_view rest = text.substr(6);
  for (char c : rest) {
    auto u = static_cast<unsigned char>(c);
    if (u != ' ' && (u < 0x21 || u > 0x7e)) {
      return fail(problem, "invalid character in record"), std::nullopt;
    }
  }
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i >= rest.size()) break;
    auto end = rest.find(' ', i);
    std::string_view term = rest.substr(i, end == std::string_view::npos ? rest.npos : end - i);
    i = end == std::string_view::npos ? rest.size() : end;

    // A modifier: name "=" … where name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
    std::size_t n = 0;
    if (!term.empty() && is_alpha(term[0])) {
      n = 1;
      while (n < term.size() &&
             (is_alnum(term[n]) || term[n] == '-' || term[n] == '_' || term[n] == '.')) {
        ++n;
      }
    }
    if (n > 0 && n < term.size() && term[n] == '=') {
      std::string name = lower(term.substr(0, n));
      std::string_view value = term.substr(n + 1);
      if (name == "redirect" || name == "exp") {
        auto& slot = name == "redirect" ? rec.redirect : rec.exp;
        if (slot) return fail(problem, "more than one " + name + "="), std::nullopt;
        slot = parse_macro_string(value, true, false, problem);
        if (!slot) return std::nullopt;
      } else if (!parse_macro_string(value, false, false, problem)) {
        return std::nullopt;
      }
      continue;
    }

    Mechanism m;
    m.text = std::string(term);
    std::string_view t = term;
    switch (t.front()) {
      case '+':
        m.qualifier = Qualifier::kPass;
        t.remove_prefix(1);
        break;
      case '-':
        m.qualifier = Qualifier::kFail;
        t.remove_prefix(1);
        break;
      case '~':
        m.qualifier = Qualifier::kSoftfail;
        t.remove_prefix(1);
        break;
      case '?':
        m.qualifier = Qualifier::kNeutral;
        t.remove_prefix(1);
        break;
      default:
        break;
    }
    std::size_t name_end = 0;
    while (name_end < t.size() && is_alnum(t[name_end])) ++name_end;
    std::string name = lower(t.substr(0, name_end));
    std::string_view arg = t.substr(name_end);  // "", ":…", "/…"
    auto domain_arg = [&](bool required) -> bool {
      if (arg.empty() || arg.front() == '/') {
        if (required) return fail(problem, "'" + name + "' needs a domain");
        return true;
      }
      if (arg.front() != ':') return fail(problem, "unknown mechanism '" + std::string(term) + "'");
      auto ms = parse_macro_string(arg.substr(1), true, false, problem);
      if (!ms) return false;
      m.domain = std::move(*ms);
      return true;
    };
    if (name == "all") {
      m.kind = Mechanism::Kind::kAll;
      if (!arg.empty()) return fail(problem, "'all' takes no argument"), std::nullopt;
    } else if (name == "include" || name == "exists") {
      m.kind = name == "include" ? Mechanism::Kind::kInclude : Mechanism::Kind::kExists;
      if (arg.empty() || arg.front() != ':') {
        return fail(problem, "'" + name + "' needs ':domain'"), std::nullopt;
      }
      if (!domain_arg(true)) return std::nullopt;
    } else if (name == "a" || name == "mx") {
      m.kind = name == "a" ? Mechanism::Kind::kA : Mechanism::Kind::kMx;
      if (!split_dual_cidr(arg, m.cidr4, m.cidr6, problem)) return std::nullopt;
      if (!domain_arg(false)) return std::nullopt;
    } else if (name == "ptr") {
      m.kind = Mechanism::Kind::kPtr;
      if (!arg.empty() && arg.front() != ':') {
        return fail(problem, "'ptr' takes no cidr length"), std::nullopt;
      }
      if (!domain_arg(false)) return std::nullopt;
    } else if (name == "ip4" || name == "ip6") {
      bool v4 = name == "ip4";
      m.kind = v4 ? Mechanism::Kind::kIp4 : Mechanism::Kind::kIp6;
      if (arg.empty() || arg.front() != ':') {
        return fail(problem, "'" + name + "' needs ':address'"), std::nullopt;
      }
      std::string_view net = arg.substr(1);
      int prefix = v4 ? 32 : 128;
      if (auto slash = net.find('/'); slash != std::string_view::npos) {
        if (!parse_cidr(net.substr(slash + 1), v4 ? 32 : 128, prefix)) {
          return fail(problem, "bad cidr length in '" + std::string(term) + "'"), std::nullopt;
        }
        net = net.substr(0, slash);
      }
      // ip4 takes a dotted quad only; ip6 any IPv6 text form (an IPv4-mapped one included).
      bool has_colon = net.find(':') != std::string_view::npos;
      auto addr = net::IpAddress::parse(net);
      if (!addr || has_colon == v4) {
        return fail(problem, "bad address in '" + std::string(term) + "'"), std::nullopt;
      }
      if (!v4 && addr->is_v4()) {
        // An IPv4-mapped network: compare as IPv4 with the prefix beyond the first 96 bits.
        if (prefix < 96) prefix = 96;
        m.network = net::Cidr(*addr, prefix - 96);
      } else {
        m.network = net::Cidr(*addr, prefix);
      }
    } else {
      return fail(problem, "unknown mechanism '" + std::string(term) + "'"), std::nullopt;
    }
    rec.mechanisms.push_back(std::move(m));
  }
  return rec;
}

}  // namespace mxguard::common::spf
