// The OpenSSL side of ARC: public keys from DNS key records, signature verification and
// signing over a SHA-256 digest, for rsa-sha256 (RSASSA-PKCS1-v1_5) and ed25519-sha256
// (RFC 8463: PureEdDSA over the SHA-256 digest). RAII owners for every OpenSSL object.
// Must never report a signature valid for a key of another type, an RSA key under the
// caller's minimum, or an OpenSSL error.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "milters/arc/arc_headers.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace mxguard::milter::arc {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// What a key record at SELECTOR._domainkey.DOMAIN says, as the caller's DNS and record parser
// (mxguard-dkim's key_record) found it.
struct KeyAnswer {
  enum class Status { kFound, kNotFound, kTempError, kInvalid, kRevoked };
  Status status = Status::kNotFound;
  std::string key_type = "rsa";     // k=
  std::vector<std::string> hashes;  // h=; empty: any
  std::string public_key;  // p=, decoded (RSA: SubjectPublicKeyInfo DER; Ed25519: 32 bytes)
  std::string detail;      // for reasons: "nxdomain", "timeout", parse error
};

// A usable public key for `algorithm`, or nullptr with *error set.
PkeyPtr public_key_for(const KeyAnswer& answer, Algorithm algorithm, unsigned minimum_rsa_bits,
                       std::string* error);

bool verify_digest(EVP_PKEY* key, Algorithm algorithm, std::string_view digest,
                   std::string_view signature);

// A private key from PEM (PKCS#1 or PKCS#8, RSA or Ed25519); nullptr when it does not parse.
PkeyPtr private_key_from_pem(std::string_view pem);
std::optional<Algorithm> algorithm_of(EVP_PKEY* key);
// Signs a SHA-256 digest; throws std::runtime_error when OpenSSL fails.
std::string sign_digest(EVP_PKEY* key, Algorithm algorithm, std::string_view digest);

}  // namespace mxguard::milter::arc
