// ARC header parsing (see arc_headers.h).
#include "milters/arc/arc_headers.h"

#include <openssl/evp.h>

#include "common/util/strings.h"
#include "milters/arc/tag_list.h"

namespace mxguard::milter::arc {
namespace {

using common::util::iequals;
using common::util::lower;

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string strip_fws(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (!is_fws(c)) out.push_back(c);
  }
  return out;
}

// i= as a number in 1..kMaxInstances; 0 when absent or out of range.
int parse_instance(const std::string* v) {
  if (!v || v->empty() || v->size() > 2) return 0;
  int n = 0;
  for (char c : *v) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + (c - '0');
  }
  return n >= 1 && n <= kMaxInstances ? n : 0;
}

// A domain or selector as DKIM allows them (sub-domain labels); lower-cased for comparisons.
bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return s.front() != '.' && s.back() != '.';
}

template <typename T>
Parsed<T> failed(std::string error, int instance = 0) {
  Parsed<T> p;
  p.error = std::move(error);
  p.instance = instance;
  return p;
}

// The tags every ARC signature header shares: i, a, b, d, s.
template <typename T>
bool common_tags(const TagList& tags, T& out, Parsed<T>& p) {
  const std::string* a = tags.get("a");
  const std::string* b = tags.get("b");
  const std::string* d = tags.get("d");
  const std::string* s = tags.get("s");
  if (!a || !b || !d || !s) {
    p.error = "missing a=, b=, d= or s=";
    return false;
  }
  auto alg = parse_algorithm(*a);
  if (!alg) {
    p.error = "unsupported algorithm";  // the value is the sender's: not echoed into our A-R
    return false;
  }
  out.algorithm = *alg;
  auto sig = base64_decode(*b);
  if (!sig || sig->empty()) {
    p.error = "b= is not base64";
    return false;
  }
  out.signature = std::move(*sig);
  if (!valid_name(*d) || !valid_name(*s)) {
    p.error = "bad d= or s=";
    return false;
  }
  out.domain = lower(*d);
  out.selector = lower(*s);
  return true;
}

}  // namespace

std::string_view algorithm_name(Algorithm a) {
  return a == Algorithm::kEd25519Sha256 ? "ed25519-sha256" : "rsa-sha256";
}

std::optional<Algorithm> parse_algorithm(std::string_view text) {
  if (iequals(text, "rsa-sha256")) return Algorithm::kRsaSha256;
  if (iequals(text, "ed25519-sha256")) return Algorithm::kEd25519Sha256;
  return std::nullopt;  // rsa-sha1 included: RFC 8301 retired it, ARC never had it
}

std::string_view canon_name(Canon c) { return c == Canon::kRelaxed ? "relaxed" : "simple"; }

std::string_view cv_name(Cv c) {
  switch (c) {
    case Cv::kNone:
      return "none";
    case Cv::kPass:
      return "pass";
    case Cv::kFail:
      return "fail";
  }
  return "fail";
}

std::optional<HeaderKind> arc_header_kind(std::string_view name) {
  if (iequals(name, "ARC-Seal")) return HeaderKind::kSeal;
  if (iequals(name, "ARC-Message-Signature")) return HeaderKind::kMessageSignature;
  if (iequals(name, "ARC-Authentication-Results")) return HeaderKind::kAuthResults;
  return std::nullopt;
}

Parsed<Seal> parse_seal(std::string_view value) {
  auto t = parse_tag_list(value);
  if (!t.list) return failed<Seal>(std::string(tag_error_name(t.error)));
  Parsed<Seal> p;
  Seal s;
  s.instance = p.instance = parse_instance(t.list->get("i"));
  if (s.instance == 0) return failed<Seal>("missing or bad i=");
  // RFC 8617 §4.1.3: h= is not allowed in an ARC-Seal.
  if (t.list->get("h")) return failed<Seal>("h= in ARC-Seal", s.instance);
  const std::string* cv = t.list->get("cv");
  if (!cv) return failed<Seal>("missing cv=", s.instance);
  if (iequals(*cv, "none")) {
    s.cv = Cv::kNone;
  } else if (iequals(*cv, "pass")) {
    s.cv = Cv::kPass;
  } else if (iequals(*cv, "fail")) {
    s.cv = Cv::kFail;
  } else {
    return failed<Seal>("bad cv=", s.instance);
  }
  if (!common_tags(*t.list, s, p)) return p;
  p.value = std::move(s);
  return p;
}

Parsed<MessageSignature> parse_message_signature(std::string_view value) {
  auto t = parse_tag_list(value);
  if (!t.list) return failed<MessageSignature>(std::string(tag_error_name(t.error)));
  Parsed<MessageSignature> p;
  MessageSignature m;
  m.instance = p.instance = parse_instance(t.list->get("i"));
  if (m.instance == 0) return failed<MessageSignature>("missing or bad i=");
  if (!common_tags(*t.list, m, p)) return p;
  // Body length limits let anyone append to the body: refused (a choice RFC 8617 allows us,
  // since an AMS that does not validate only lowers oldest-pass or fails the chain).
  if (t.list->get("l")) return failed<MessageSignature>("l= is not supported", m.instance);
  if (const std::string* c = t.list->get("c")) {
    std::string_view cs = *c;
    std::string_view hc = cs.substr(0, cs.find('/'));
    std::string_view bc =
        cs.find('/') == std::string_view::npos ? "simple" : cs.substr(cs.find('/') + 1);
    auto canon = [](std::string_view v) -> std::optional<Canon> {
      if (iequals(v, "simple")) return Canon::kSimple;
      if (iequals(v, "relaxed")) return Canon::kRelaxed;
      return std::nullopt;
    };
    auto h = canon(hc);
    auto b = canon(bc);
    if (!h || !b) return failed<MessageSignature>("bad c=", m.instance);
    m.header_canon = *h;
    m.body_canon = *b;
  }
  const std::string* h = t.list->get("h");
  const std::string* bh = t.list->get("bh");
  if (!h || !bh) return failed<MessageSignature>("missing h= or bh=", m.instance);
  for (std::string_view name : common::util::split(*h, ':')) {
    std::string n = lower(strip_fws(name));
    if (n.empty()) return failed<MessageSignature>("empty name in h=", m.instance);
    // RFC 8617 §4.1.2: the AMS must not sign ARC-Seal header fields.
    if (n == "arc-seal") return failed<MessageSignature>("h= names ARC-Seal", m.instance);
    if (m.headers.size() >= kMaxSignedHeaders) {
      return failed<MessageSignature>("too many names in h=", m.instance);
    }
    m.headers.push_back(std::move(n));
  }
  auto body_hash = base64_decode(*bh);
  if (!body_hash || body_hash->size() != 32) {
    return failed<MessageSignature>("bh= is not a SHA-256 hash", m.instance);
  }
  m.body_hash = std::move(*body_hash);
  p.value = std::move(m);
  return p;
}

Parsed<AuthResults> parse_auth_results(std::string_view value) {
  if (value.size() > kMaxTagListBytes) return failed<AuthResults>("too long");
  // "i=N; authserv-id; results": only the instance tag is ARC's; the rest is RFC 8601 text,
  // sealed as it stands and never interpreted here.
  std::size_t semi = value.find(';');
  if (semi == std::string_view::npos) return failed<AuthResults>("missing ';' after i=");
  auto tags = parse_tag_list(value.substr(0, semi));
  int instance = tags.list ? parse_instance(tags.list->get("i")) : 0;
  if (instance == 0 || tags.list->tags.size() != 1) return failed<AuthResults>("missing or bad i=");
  Parsed<AuthResults> p;
  p.instance = instance;
  std::string_view rest = value.substr(semi + 1);
  while (!rest.empty() && is_fws(rest.front())) rest.remove_prefix(1);
  while (!rest.empty() && is_fws(rest.back())) rest.remove_suffix(1);
  p.value = AuthResults{instance, std::string(rest)};
  return p;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string clean = strip_fws(text);
  if (clean.size() % 4 != 0) return std::nullopt;
  if (clean.empty()) return std::string();
  std::size_t pad = 0;
  for (std::size_t i = 0; i < clean.size(); ++i) {
    char c = clean[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/';
    if (c == '=') {
      if (i + 2 < clean.size()) return std::nullopt;  // only the last two may be padding
      ++pad;
      continue;
    }
    if (!ok || pad) return std::nullopt;
  }
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string base64_encode(std::string_view data) {
  std::string out((data.size() + 2) / 3 * 4 + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace mxguard::milter::arc
