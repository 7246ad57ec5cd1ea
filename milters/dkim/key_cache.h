// Parsed private keys for libopendkim. libopendkim re-reads the PEM key text for every message
// it signs (PEM_read_bio_PrivateKey), and OpenSSL 3's decoder needs about 0.5 ms for that —
// more than the RSA-2048 signature itself, and ten times an Ed25519 one. key_cache.cc defines
// PEM_read_bio_PrivateKey in our binaries (interposing libcrypto's for libopendkim): for a
// memory BIO holding exactly the text of a key we loaded, it hands out a new reference to the
// key parsed at load time; everything else goes to libcrypto's function unchanged.
// Must never return a key for text that is not byte-for-byte one we registered.
#pragma once

#include <string>

typedef struct evp_pkey_st EVP_PKEY;

namespace mxguard::milter::dkim {

// Remembers `key` (a reference is taken) as the parse of `pem`. Keys stay for the process's
// lifetime: a handful per configuration, and a reload may still have messages in flight.
void remember_parsed_key(const std::string& pem, EVP_PKEY* key);
// How many PEM reads the cache answered (for tests and the benchmark).
unsigned long parsed_key_hits();

}  // namespace mxguard::milter::dkim
