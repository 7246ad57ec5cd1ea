// OpenSSL signatures for ARC (see crypto.h).
#include "milters/arc/crypto.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <stdexcept>

#include "common/util/strings.h"

namespace mxguard::milter::arc {
namespace {

struct CtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  void operator()(BIO* b) const { BIO_free(b); }
};

}  // namespace

void PkeyDeleter::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }

PkeyPtr public_key_for(const KeyAnswer& answer, Algorithm algorithm, unsigned minimum_rsa_bits,
                       std::string* error) {
  auto fail = [&](std::string e) {
    *error = std::move(e);
    return PkeyPtr();
  };
  switch (answer.status) {
    case KeyAnswer::Status::kFound:
      break;
    case KeyAnswer::Status::kNotFound:
      return fail("no key record (" + answer.detail + ")");
    case KeyAnswer::Status::kTempError:
      return fail("key lookup failed temporarily (" + answer.detail + ")");
    case KeyAnswer::Status::kInvalid:
      return fail("bad key record (" + answer.detail + ")");
    case KeyAnswer::Status::kRevoked:
      return fail("key revoked");
  }
  bool ed = algorithm == Algorithm::kEd25519Sha256;
  if (!common::util::iequals(answer.key_type, ed ? "ed25519" : "rsa")) {
    return fail("key type does not fit the algorithm");
  }
  if (!answer.hashes.empty()) {
    bool sha256 = false;
    for (const auto& h : answer.hashes) sha256 |= common::util::iequals(h, "sha256");
    if (!sha256) return fail("key record excludes sha256");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(answer.public_key.data());
  if (ed) {
    if (answer.public_key.size() != 32) return fail("Ed25519 key is not 32 bytes");
    PkeyPtr k(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, p, 32));
    if (!k) return fail("Ed25519 key does not decode");
    return k;
  }
  // Through a memory BIO: mxguard-dkim interposes d2i_PUBKEY_bio with a bounded cache of
  // decoded keys (milters/dkim/key_cache.h), and OpenSSL 3's decoder is the dearest step of a
  // verification (~0.1 ms per key).
  std::unique_ptr<BIO, CtxDeleter> bio(
      BIO_new_mem_buf(answer.public_key.data(), static_cast<int>(answer.public_key.size())));
  if (!bio) return fail("out of memory");
  PkeyPtr k(d2i_PUBKEY_bio(bio.get(), nullptr));
  if (!k || EVP_PKEY_base_id(k.get()) != EVP_PKEY_RSA) return fail("RSA key does not decode");
  if (static_cast<unsigned>(EVP_PKEY_bits(k.get())) < minimum_rsa_bits) {
    return fail("RSA key of " + std::to_string(EVP_PKEY_bits(k.get())) + " bits is too short");
  }
  return k;
}

bool verify_digest(EVP_PKEY* key, Algorithm algorithm, std::string_view digest,
                   std::string_view signature) {
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  const auto* md = reinterpret_cast<const unsigned char*>(digest.data());
  if (algorithm == Algorithm::kEd25519Sha256) {
    if (EVP_PKEY_base_id(key) != EVP_PKEY_ED25519) return false;
    std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1) return false;
    return EVP_DigestVerify(ctx.get(), sig, signature.size(), md, digest.size()) == 1;
  }
  if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) return false;
  std::unique_ptr<EVP_PKEY_CTX, CtxDeleter> ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    return false;
  }
  return EVP_PKEY_verify(ctx.get(), sig, signature.size(), md, digest.size()) == 1;
}

PkeyPtr private_key_from_pem(std::string_view pem) {
  std::unique_ptr<BIO, CtxDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return PkeyPtr();
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::optional<Algorithm> algorithm_of(EVP_PKEY* key) {
  switch (EVP_PKEY_base_id(key)) {
    case EVP_PKEY_RSA:
      return Algorithm::kRsaSha256;
    case EVP_PKEY_ED25519:
      return Algorithm::kEd25519Sha256;
    default:
      return std::nullopt;
  }
}

std::string sign_digest(EVP_PKEY* key, Algorithm algorithm, std::string_view digest) {
  const auto* md = reinterpret_cast<const unsigned char*>(digest.data());
  std::size_t len = 0;
  if (algorithm == Algorithm::kEd25519Sha256) {
    std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, md, digest.size()) != 1) {
      throw std::runtime_error("Ed25519 signing failed");
    }
    std::string out(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, md,
                       digest.size()) != 1) {
      throw std::runtime_error("Ed25519 signing failed");
    }
    out.resize(len);
    return out;
  }
  std::unique_ptr<EVP_PKEY_CTX, CtxDeleter> ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, md, digest.size()) != 1) {
    throw std::runtime_error("RSA signing failed");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, md,
                    digest.size()) != 1) {
    throw std::runtime_error("RSA signing failed");
  }
  out.resize(len);
  return out;
}

}  // namespace mxguard::milter::arc
