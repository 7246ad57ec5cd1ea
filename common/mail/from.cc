// From header parsing (see from.h). One pass over the value splits it into list members at
// top-level commas (outside quoted strings, comments, angle brackets and encoded words), then
// each member yields one mailbox: the last angle-addr if it has one, else the addr-spec.
#include "common/mail/from.h"

#include <idn2.h>

#include <algorithm>

namespace mxguard::common::mail {
namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 5322 folding white space (space, tab, CR, LF), deliberately not util::trim: a VT or FF
// in an address is not white space to strip but a byte that makes the address bad.
std::string_view trim(std::string_view s) {
  while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

// Removes comments (nested, with quoted-pairs) outside quoted strings and domain literals.
// Returns false when a comment or quoted string is not closed.
bool strip_comments(std::string_view in, std::string& out) {
  out.clear();
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\\' && (quoted || depth > 0)) {
      if (i + 1 >= in.size()) return false;
      if (depth == 0) {
        out += c;
        out += in[i + 1];
      }
      ++i;
      continue;
    }
    if (depth > 0) {
      if (c == '(')
        ++depth;
      else if (c == ')')
        --depth;
      if (depth == 0) out += ' ';  // a comment separates tokens
      continue;
    }
    if (quoted) {
      if (c == '"') quoted = false;
      out += c;
      continue;
    }
    if (c == '"')
      quoted = true;
    else if (c == '(') {
      depth = 1;
      continue;
    } else if (c == ')') {
      return false;
    }
    out += c;
  }
  return depth == 0 && !quoted;
}

// Parses an addr-spec ("local@domain", quotes and white space around tokens allowed).
bool parse_addr_spec(std::string_view spec, Mailbox& out, std::string& error) {
  spec = trim(spec);
  if (spec.empty()) {
    error = "empty address";
    return false;
  }
  // The domain starts after the last '@' outside a quoted local part.
  std::size_t at = std::string_view::npos;
  bool quoted = false;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    char c = spec[i];
    if (c == '\\' && quoted) {
      ++i;
      continue;
    }
    if (c == '"')
      quoted = !quoted;
    else if (c == '@' && !quoted) {
      if (at != std::string_view::npos) {
        error = "several @ in address";
        return false;
      }
      at = i;
    }
  }
  if (at == std::string_view::npos) {
    error = "address without a domain";
    return false;
  }
  std::string_view local = trim(spec.substr(0, at));
  std::string_view domain = trim(spec.substr(at + 1));
  if (local.empty()) {
    error = "address without a local part";
    return false;
  }
  // Local part: a quoted string or dot-atoms; white space only between tokens of obs-local-part.
  std::string l;
  quoted = false;
  for (std::size_t i = 0; i < local.size(); ++i) {
    char c = local[i];
    if (quoted && c == '\\' && i + 1 < local.size()) {
      l += local[++i];
      continue;
    }
    if (c == '"') {
      quoted = !quoted;
      continue;
    }
    if (!quoted && is_wsp(c)) continue;
    if (!quoted && (c == '<' || c == '>' || c == ',' || c == ';' || c == ':' || c == '[' ||
                    c == ']' || c == '\\')) {
      error = "invalid character in local part";
      return false;
    }
    l += c;
  }
  if (domain.empty()) {
    error = "address without a domain";
    return false;
  }
  if (domain.front() == '[') {
    error = "domain literal has no DMARC domain";
    return false;
  }
  std::string d;
  bool space = false;
  for (char c : domain) {
    if (is_wsp(c)) {
      space = true;  // obs-domain allows CFWS around the dots between labels, nowhere else
      continue;
    }
    if (space && !d.empty() && d.back() != '.' && c != '.') {
      error = "white space inside a domain label";
      return false;
    }
    space = false;
    d += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!d.empty() && d.back() == '.') d.pop_back();
  // An internationalised domain (RFC 6532, SMTPUTF8 mail) is looked up by its A-labels.
  if (std::any_of(d.begin(), d.end(),
                  [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    char* ascii = nullptr;
    int rc = idn2_to_ascii_8z(d.c_str(), &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK || ascii == nullptr) {
      error = std::string("invalid internationalised domain: ") + idn2_strerror(rc);
      return false;
    }
    d = ascii;
    idn2_free(ascii);
    for (char& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!valid_domain(d)) {
    error = "invalid domain '" + d.substr(0, 64) + "'";
    return false;
  }
  out.local = std::move(l);
  out.domain = std::move(d);
  return true;
}

// One list member: "phrase <addr>" or "addr-spec"; returns false on a syntax error. Empty
// members (obs-mbox-list) set *empty.
bool parse_member(std::string_view member, Mailbox& out, bool& empty, std::string& error) {
  member = trim(member);
  empty = member.empty();
  if (empty) return true;
  // The angle-addr is the last <...> outside quoted strings.
  std::size_t open = std::string_view::npos, close = std::string_view::npos;
  bool quoted = false;
  int angles = 0;
  for (std::size_t i = 0; i < member.size(); ++i) {
    char c = member[i];
    if (c == '\\' && quoted) {
      ++i;
      continue;
    }
    if (c == '"')
      quoted = !quoted;
    else if (!quoted && c == '<') {
      if (angles++ > 0 || open != std::string_view::npos) {
        error = "several angle addresses in one mailbox";
        return false;
      }
      open = i;
    } else if (!quoted && c == '>') {
      if (angles-- != 1) {
        error = "unbalanced angle brackets";
        return false;
      }
      close = i;
    }
  }
  if (quoted || angles != 0) {
    error = "unbalanced quotes or angle brackets";
    return false;
  }
  if (open == std::string_view::npos) return parse_addr_spec(member, out, error);
  if (!trim(member.substr(close + 1)).empty()) {
    error = "text after the angle address";
    return false;
  }
  std::string_view inner = member.substr(open + 1, close - open - 1);
  // obs-route: "<@a,@b:local@domain>"
  if (!inner.empty() && trim(inner).front() == '@') {
    auto colon = inner.find(':');
    if (colon == std::string_view::npos) {
      error = "bad source route";
      return false;
    }
    inner = inner.substr(colon + 1);
  }
  if (trim(inner).empty()) {
    error = "empty angle address";
    return false;
  }
  return parse_addr_spec(inner, out, error);
}

}  // namespace

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= d.size(); ++i) {
    if (i == d.size() || d[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (d[i - 1] == '-' || d[i - label] == '-') return false;
      label = 0;
      continue;
    }
    char c = d[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
    ++label;
  }
  return true;
}

std::string normalize_domain(std::string_view domain) {
  std::string d;
  d.reserve(domain.size());
  for (char c : domain) d += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto first = d.find_first_not_of('.');
  if (first == std::string::npos) return {};
  auto last = d.find_last_not_of('.');
  return d.substr(first, last - first + 1);
}

FromParse parse_from(std::string_view value, const FromLimits& limits) {
  FromParse r;
  if (value.size() > limits.max_length) {
    r.error = "From header longer than " + std::to_string(limits.max_length) + " bytes";
    return r;
  }
  for (char c : value) {
    if (c == '\0') {
      r.error = "NUL byte in From header";
      return r;
    }
  }
  std::string text;
  if (!strip_comments(value, text)) {
    r.error = "unterminated comment or quoted string";
    return r;
  }
  // Split into members at top-level ',' and group delimiters ':' ... ';'.
  std::vector<std::string_view> members;
  std::string_view t = text;
  std::size_t start = 0;
  bool quoted = false, in_group = false;
  int angles = 0;
  auto cut = [&](std::size_t end) {
    members.push_back(t.substr(start, end - start));
    start = end + 1;
  };
  for (std::size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '\\' && quoted) {
      ++i;
      continue;
    }
    if (c == '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    // An RFC 2047 encoded word is one atom, whatever it contains.
    if (c == '=' && i + 1 < t.size() && t[i + 1] == '?' && angles == 0) {
      auto end = t.find("?=", i + 2);
      // "=?charset?enc?text?=": the end marker must come after two more '?'.
      auto q1 = t.find('?', i + 2);
      auto q2 = q1 == std::string_view::npos ? q1 : t.find('?', q1 + 1);
      if (q2 != std::string_view::npos) end = t.find("?=", q2 + 1);
      if (end != std::string_view::npos && q2 != std::string_view::npos && q2 < end) {
        i = end + 1;
        continue;
      }
    }
    if (c == '<')
      ++angles;
    else if (c == '>')
      --angles;
    else if (angles == 0 && c == ',')
      cut(i);
    else if (angles == 0 && c == ':') {
      if (in_group) {
        r.error = "nested group";
        return r;
      }
      in_group = true;
      start = i + 1;  // the group's display name is no address
    } else if (angles == 0 && c == ';') {
      if (!in_group) {
        r.error = "';' outside a group";
        return r;
      }
      cut(i);
      in_group = false;
    }
    if (angles < 0) {
      r.error = "unbalanced angle brackets";
      return r;
    }
  }
  if (quoted || angles != 0) {
    r.error = "unbalanced quotes or angle brackets";
    return r;
  }
  // A group the header never closes ("Support: Acme <s@acme.example>", an unquoted colon in a
  // display name, from broken mailers) ends with the header: its addresses are what a mail
  // reader shows, so they are what we evaluate. Rejecting it as bad would refuse real mail.
  members.push_back(t.substr(start));
  for (auto m : members) {
    Mailbox box;
    bool empty = false;
    std::string error;
    if (!parse_member(m, box, empty, error)) {
      r.mailboxes.clear();
      r.error = error;
      return r;
    }
    if (empty) continue;
    if (r.mailboxes.size() >= limits.max_mailboxes) {
      r.mailboxes.clear();
      r.error = "more than " + std::to_string(limits.max_mailboxes) + " addresses";
      return r;
    }
    r.mailboxes.push_back(std::move(box));
  }
  if (r.mailboxes.empty()) r.error = "no address";
  return r;
}

}  // namespace mxguard::common::mail
