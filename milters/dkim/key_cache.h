// Parsed private keys for libopendkim. libopendkim re-reads the PEM key text for every message
// it signs (PEM_read_bio_PrivateKey), and OpenSSL 3's decoder needs about 0.5 ms for that —
// more than the RSA-2048 signature itself, and ten times an Ed25519 one. key_cache.cc defines
// PEM_read_bio_PrivateKey in our binaries (interposing libcrypto's for libopendkim): for a
// memory BIO holding exactly the text of a key we loaded, it hands out a new reference to the
// key parsed at load time; everything else goes to libcrypto's function unchanged.
// Verifying has the same cost the other way round: libopendkim decodes the DNS key record's
// public key (d2i_PUBKEY_bio) for every signature, ~20 % of mxguard-dkim's CPU in the stack
// benchmark. key_cache.cc interposes that function too, with a bounded cache keyed by the DER
// bytes (anyone can publish keys, so it must stay small).
// Must never return a key for bytes that are not byte-for-byte the ones it was parsed from.
#pragma once

#include <cstddef>
#include <string>

typedef struct evp_pkey_st EVP_PKEY;
typedef struct bio_st BIO;

namespace mxguard::milter::dkim {

// Remembers `key` (a reference is taken) as the parse of `pem`. Keys stay for the process's
// lifetime: a handful per configuration, and a reload may still have messages in flight.
void remember_parsed_key(const std::string& pem, EVP_PKEY* key);
// How many PEM reads the cache answered (for tests and the benchmark).
unsigned long parsed_key_hits();
// The d2i_PUBKEY_bio(bio, nullptr) interposer's work: a key for the BIO's whole remaining
// content from the cache (the BIO is read to its end, as a decode would), else `decode`'s
// answer, cached when it consumed the whole content. Returns a new reference or nullptr.
EVP_PKEY* public_key_from_bio(BIO* bio, EVP_PKEY* (*decode)(BIO*, EVP_PKEY**));
// How many public-key decodes the cache answered, and how many keys it holds (tests, bench).
unsigned long public_key_hits();
std::size_t public_keys_cached();
// The most public keys kept; the least recently used goes first.
inline constexpr std::size_t kPublicKeyCacheCapacity = 512;

}  // namespace mxguard::milter::dkim
