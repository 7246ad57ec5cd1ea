// DKIM key records (see key_record.h). OpenSSL objects live in unique_ptrs only.
#include "milters/dkim/key_record.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "common/util/strings.h"

namespace mxguard::milter::dkim {
namespace {

using common::util::iequals;
using common::util::lower;
using common::util::trim;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool valid_tag_name(std::string_view name) {
  if (name.empty() || !is_alpha(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

// tag-value: VALCHARs (%x21-3A / %x3C-7E; ';' cannot occur here) and folding white space.
bool valid_tag_value(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return is_wsp(c) || (u >= 0x21 && u <= 0x7e);
  });
}

std::string without_space(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (!is_wsp(c)) out.push_back(c);
  }
  return out;
}

// "sha1:sha256" → {"sha1", "sha256"} (lower case, white space dropped).
std::vector<std::string> colon_list(std::string_view value) {
  std::vector<std::string> out;
  std::string compact = without_space(value);  // split() returns views into it
  for (auto part : common::util::split(compact, ':')) {
    if (!part.empty()) out.push_back(lower(part));
  }
  return out;
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The public key a p= value encodes, in the form PrivateKey::public_p holds (SubjectPublicKeyInfo
// DER for RSA, the raw 32 bytes for Ed25519). RSA keys may also be published as a bare PKCS#1
// RSAPublicKey (RFC 6376 §3.6.1 names SPKI, but verifiers such as dkimpy accept both), so those
// are re-encoded before comparing. Empty when the bytes are no key of that type.
std::string normalized_public_key(const std::string& der, KeyType type) {
  if (type == KeyType::kEd25519) return der.size() == 32 ? der : std::string();
  const auto* in = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(d2i_PUBKEY(nullptr, &in, static_cast<long>(der.size())));
  if (!pkey) {
    in = reinterpret_cast<const unsigned char*>(der.data());
    pkey.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &in, static_cast<long>(der.size())));
  }
  if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) return "";
  unsigned char* out = nullptr;
  int len = i2d_PUBKEY(pkey.get(), &out);
  if (len <= 0) return "";
  std::string spki(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
  OPENSSL_free(out);
  return spki;
}

}  // namespace

KeyRecordParse parse_key_record(std::string_view txt) {
  KeyRecordParse r;
  KeyRecord rec;
  std::vector<std::string> seen;
  bool first = true, have_p = false;
  for (auto element : common::util::split(txt, ';')) {
    if (trim(element).empty()) continue;
    auto eq = element.find('=');
    if (eq == std::string_view::npos) {
      r.error = "'" + std::string(trim(element).substr(0, 32)) + "' is not tag=value";
      return r;
    }
    std::string_view name = trim(element.substr(0, eq));
    std::string_view value = trim(element.substr(eq + 1));
    if (!valid_tag_name(name)) {
      r.error = "invalid tag name '" + std::string(name.substr(0, 32)) + "'";
      return r;
    }
    if (!valid_tag_value(value)) {
      r.error = "invalid characters in the value of " + std::string(name) + "=";
      return r;
    }
    // Tag names are case-sensitive (§3.2): "P=" is an unknown tag, not the key.
    std::string tag(name);
    if (contains(seen, tag)) {
      r.error = "tag " + tag + "= appears twice";
      return r;
    }
    seen.push_back(tag);
    bool was_first = first;
    first = false;
    if (tag == "v") {
      if (!was_first) {
        r.error = "v= is not the first tag";
        return r;
      }
      if (value != "DKIM1") {
        r.error = "v=" + std::string(value.substr(0, 32)) + " is not DKIM1";
        return r;
      }
      rec.has_v = true;
    } else if (tag == "k") {
      rec.k = lower(value);
    } else if (tag == "p") {
      rec.p = without_space(value);
      have_p = true;
    } else if (tag == "h") {
      rec.h = colon_list(value);
    } else if (tag == "s") {
      rec.s = colon_list(value);
    } else if (tag == "t") {
      rec.t = colon_list(value);
    }
  }
  if (!have_p) {
    r.error = "no p= tag";
    return r;
  }
  if (!rec.p.empty()) {
    try {
      base64_decode(rec.p);
    } catch (const std::invalid_argument&) {
      r.error = "p= is not base64";
      return r;
    }
  }
  r.record = std::move(rec);
  return r;
}

std::string_view key_status_name(KeyStatus s) {
  switch (s) {
    case KeyStatus::kMatch:
      return "match";
    case KeyStatus::kMissing:
      return "missing";
    case KeyStatus::kDnsError:
      return "dns-error";
    case KeyStatus::kBadSyntax:
      return "bad-syntax";
    case KeyStatus::kRevoked:
      return "revoked";
    case KeyStatus::kWrongType:
      return "wrong-type";
    case KeyStatus::kWrongKey:
      return "wrong-key";
    case KeyStatus::kUnusable:
      return "unusable";
  }
  return "bad-syntax";
}

KeyCheck judge_key_record(const common::dns::Answer& answer, const std::string& name,
                          const PrivateKey& key) {
  using common::dns::Status;
  KeyCheck c;
  c.name = name;
  auto done = [&](KeyStatus status, std::string message) {
    c.status = status;
    c.message = name + ": " + std::move(message);
    return c;
  };
  switch (answer.status) {
    case Status::kOk:
      break;
    case Status::kNxDomain:
    case Status::kNoData:
      return done(KeyStatus::kMissing,
                  "no TXT record (" + std::string(common::dns::status_name(answer.status)) + ")");
    default:
      return done(KeyStatus::kDnsError,
                  "lookup failed (" + std::string(common::dns::status_name(answer.status)) + ")");
  }
  c.published = answer.records;
  if (answer.records.size() != 1) {
    return done(KeyStatus::kBadSyntax, std::to_string(answer.records.size()) +
                                           " TXT records; verifiers may pick any, publish one");
  }
  auto parsed = parse_key_record(answer.records.front());
  if (!parsed.record) return done(KeyStatus::kBadSyntax, "not a DKIM key record: " + parsed.error);
  const KeyRecord& rec = *parsed.record;
  std::string ours(key_type_name(key.type));
  if (rec.k != ours) {
    return done(KeyStatus::kWrongType, "k=" + rec.k + " but the private key is " + ours);
  }
  if (rec.p.empty()) return done(KeyStatus::kRevoked, "key revoked (empty p=)");
  if (!rec.s.empty() && !contains(rec.s, "*") && !contains(rec.s, "email")) {
    return done(KeyStatus::kUnusable, "s= does not include email or *");
  }
  if (!rec.h.empty() && !contains(rec.h, "sha256")) {
    return done(KeyStatus::kUnusable, "h= does not include sha256, the hash we sign with");
  }
  std::string published_key = normalized_public_key(base64_decode(rec.p), key.type);
  if (published_key.empty() || published_key != base64_decode(key.public_p)) {
    return done(KeyStatus::kWrongKey, "p= does not match the private key");
  }
  if (contains(rec.t, "y")) {
    c.warnings.push_back(name + ": t=y (testing): verifiers may treat failures as unsigned mail");
  }
  return done(KeyStatus::kMatch,
              "matches the private key (" + ours +
                  (key.type == KeyType::kRsa ? ", " + std::to_string(key.bits) + " bits" : "") +
                  ")");
}

KeyCheck check_published_key(common::dns::Resolver& resolver, const std::string& domain,
                             const std::string& selector, const PrivateKey& key) {
  std::string name = selector + "._domainkey." + domain;
  return judge_key_record(resolver.lookup_txt(name), name, key);
}

}  // namespace mxguard::milter::dkim
