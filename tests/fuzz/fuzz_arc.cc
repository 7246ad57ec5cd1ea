// Fuzzes the ARC library (milters/arc/) with whole messages: header fields up to the first
// empty line (folding kept), then the body in uneven chunks. Every ARC header field also goes
// through its parser and the canonicalisers alone; the chain is validated against fixed keys
// (a fixed Ed25519 key, so no DNS). Invariants: no crash, a result of none only
// without ARC header fields, and a message without ARC header fields that we seal validates
// as pass with our own validator.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/authres/authres.h"
#include "milters/arc/canon.h"
#include "milters/arc/chain.h"
#include "milters/arc/sealer.h"
#include "milters/arc/tag_list.h"

namespace arc = mxguard::milter::arc;

namespace {

struct Key {
  arc::PkeyPtr key;
  std::string pub;  // raw 32 bytes
  Key() {
    // A fixed seed: a crash found once reproduces with the same signatures.
    unsigned char seed[32];
    for (unsigned i = 0; i < sizeof seed; ++i) seed[i] = static_cast<unsigned char>(i * 7 + 1);
    EVP_PKEY* k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, sizeof seed);
    key.reset(k);
    unsigned char raw[32];
    std::size_t len = sizeof raw;
    EVP_PKEY_get_raw_public_key(k, raw, &len);
    pub.assign(reinterpret_cast<char*>(raw), len);
  }
};

const Key& key() {
  static Key k;
  return k;
}

arc::KeyAnswer fetch(const std::string& domain, const std::string& selector) {
  arc::KeyAnswer a;
  if (selector == "slow") {
    a.status = arc::KeyAnswer::Status::kTempError;
    return a;
  }
  if (selector == "revoked") {
    a.status = arc::KeyAnswer::Status::kRevoked;
    return a;
  }
  if (domain.find("example") == std::string::npos) return a;  // not found
  a.status = arc::KeyAnswer::Status::kFound;
  a.key_type = "ed25519";
  a.public_key = key().pub;
  return a;
}

void feed(arc::Message& m, const std::vector<std::pair<std::string, std::string>>& headers,
          std::string_view body, bool will_seal) {
  for (const auto& [n, v] : headers) m.header(n, v);
  m.end_of_headers(will_seal);
  std::size_t chunk = 1;
  for (std::size_t i = 0; i < body.size(); i += chunk, chunk = chunk * 3 % 97 + 1) {
    m.body(body.substr(i, chunk));
  }
  m.end_of_body();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<std::string, std::string>> headers;
  std::size_t pos = 0;
  while (pos < in.size()) {
    std::size_t eol = in.find('\n', pos);
    if (eol == std::string_view::npos) eol = in.size();
    std::string_view line = in.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !headers.empty()) {
      headers.back().second += "\r\n";
      headers.back().second += line;
      continue;
    }
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  std::string_view body = pos < in.size() ? in.substr(pos) : std::string_view();

  bool any_arc = false;
  for (const auto& [n, v] : headers) {
    arc::canon_header(arc::Canon::kRelaxed, n, v);
    arc::canon_header(arc::Canon::kSimple, n, v);
    auto kind = arc::arc_header_kind(n);
    if (!kind) continue;
    any_arc = true;
    arc::parse_tag_list(v);
    arc::strip_b_value(v);
    arc::parse_seal(v);
    arc::parse_message_signature(v);
    arc::parse_auth_results(v);
  }

  arc::Message m;
  feed(m, headers, body, true);
  arc::ChainResult r = arc::validate_chain(m, fetch);
  if ((r.result == arc::Cv::kNone) != !any_arc) abort();
  if (r.result == arc::Cv::kPass && (r.instances < 1 || r.instances > arc::kMaxInstances)) abort();
  auto ar = arc::to_authres(r, "192.0.2.1");
  std::string value = mxguard::common::authres::Builder("mx.example").add(ar).value();
  if (!mxguard::common::authres::parse(value)) abort();

  arc::SealRequest req;
  req.domain = "seal.example";
  req.selector = "fuzz";
  req.key = key().key.get();
  req.authserv_id = "mx.example";
  req.results = "spf=pass smtp.mailfrom=x.example";
  req.timestamp = 1700000000;
  arc::SealOutcome o = arc::seal(m, r, req);
  if (!any_arc && o.set && !m.overflow()) {
    // Our own set on a message without a chain must validate.
    auto sealed = headers;
    sealed.insert(sealed.begin(), {"ARC-Authentication-Results", o.set->auth_results});
    sealed.insert(sealed.begin(), {"ARC-Message-Signature", o.set->message_signature});
    sealed.insert(sealed.begin(), {"ARC-Seal", o.set->seal});
    arc::Message again;
    feed(again, sealed, body, false);
    arc::ChainResult check = arc::validate_chain(again, fetch);
    if (check.result != arc::Cv::kPass && !again.overflow()) {
      fprintf(stderr, "our own seal does not validate: %s\n", check.reason.c_str());
      abort();
    }
  }
  if (o.set && o.set->seal.find("cv=pass") != std::string::npos && r.result != arc::Cv::kPass) {
    abort();
  }
  return 0;
}
