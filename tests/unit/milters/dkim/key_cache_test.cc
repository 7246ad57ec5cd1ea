// Unit tests for milters/dkim/key_cache.cc's public-key cache: the d2i_PUBKEY_bio interposer
// returns the key decoded from exactly the same bytes, never a key for other bytes, reads the
// BIO as a decode would, and stays within its bound.
#include "milters/dkim/key_cache.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace mxguard::milter::dkim {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string der_of(EVP_PKEY* key) {
  unsigned char* out = nullptr;
  int n = i2d_PUBKEY(key, &out);
  EXPECT_GT(n, 0);
  std::string der(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return der;
}

Pkey new_key(const char* type) {
  if (std::string(type) == "RSA")
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048)));
  return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
}

// Decodes `bytes` the way libopendkim does: a read-only memory BIO, no output argument.
// *pending = what the call left unread.
Pkey decode(const std::string& bytes, int* pending = nullptr) {
  BIO* bio = BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size()));
  Pkey k(d2i_PUBKEY_bio(bio, nullptr));
  if (pending != nullptr) *pending = static_cast<int>(BIO_pending(bio));
  BIO_free(bio);
  return k;
}

TEST(DkimKeyCacheTest, SameBytesGiveTheCachedKeyAndReadTheBio) {
  Pkey rsa = new_key("RSA");
  ASSERT_TRUE(rsa);
  std::string der = der_of(rsa.get());
  unsigned long hits = public_key_hits();
  int pending = -1;
  Pkey first = decode(der, &pending);
  ASSERT_TRUE(first);
  EXPECT_EQ(pending, 0);
  EXPECT_EQ(public_key_hits(), hits) << "the first decode is libcrypto's";
  Pkey second = decode(der, &pending);
  ASSERT_TRUE(second);
  EXPECT_EQ(public_key_hits(), hits + 1);
  EXPECT_EQ(pending, 0) << "a cache hit consumes the BIO like a decode";
  EXPECT_EQ(second.get(), first.get()) << "the same parsed key, one more reference";
  EXPECT_EQ(EVP_PKEY_eq(second.get(), rsa.get()), 1);
}

TEST(DkimKeyCacheTest, OtherBytesNeverGetAnotherKey) {
  Pkey a = new_key("ED25519");
  Pkey b = new_key("ED25519");
  std::string der_a = der_of(a.get()), der_b = der_of(b.get());
  ASSERT_NE(der_a, der_b);
  Pkey ka = decode(der_a);
  Pkey kb = decode(der_b);
  Pkey ka2 = decode(der_a);
  ASSERT_TRUE(ka && kb && ka2);
  EXPECT_EQ(EVP_PKEY_eq(ka.get(), a.get()), 1);
  EXPECT_EQ(EVP_PKEY_eq(kb.get(), b.get()), 1);
  EXPECT_EQ(EVP_PKEY_eq(ka2.get(), a.get()), 1);
  EXPECT_NE(EVP_PKEY_eq(kb.get(), a.get()), 1);
}

TEST(DkimKeyCacheTest, TrailingBytesAndGarbageAreNotCached) {
  Pkey k = new_key("ED25519");
  std::string der = der_of(k.get()) + "x";  // one object, then a stray byte
  unsigned long hits = public_key_hits();
  int pending = -1;
  Pkey first = decode(der, &pending);
  ASSERT_TRUE(first) << "libcrypto decodes the first object";
  EXPECT_EQ(pending, 1);
  Pkey again = decode(der, &pending);
  ASSERT_TRUE(again);
  EXPECT_EQ(public_key_hits(), hits) << "a decode that left bytes behind is never cached";
  EXPECT_EQ(pending, 1);

  std::size_t cached = public_keys_cached();
  EXPECT_FALSE(decode(std::string("\x30\x03garbage", 10)));
  EXPECT_FALSE(decode(std::string(1, '\0')));
  EXPECT_EQ(public_keys_cached(), cached);
  EXPECT_EQ(public_key_hits(), hits);
}

TEST(DkimKeyCacheTest, StaysWithinItsBoundLeastRecentlyUsedFirst) {
  Pkey oldest = new_key("ED25519");
  std::string oldest_der = der_of(oldest.get());
  ASSERT_TRUE(decode(oldest_der));
  for (std::size_t i = 0; i < kPublicKeyCacheCapacity + 20; ++i) {
    Pkey k = new_key("ED25519");
    ASSERT_TRUE(decode(der_of(k.get())));
  }
  EXPECT_EQ(public_keys_cached(), kPublicKeyCacheCapacity);
  unsigned long hits = public_key_hits();
  Pkey again = decode(oldest_der);
  ASSERT_TRUE(again);
  EXPECT_EQ(public_key_hits(), hits) << "the oldest entry was evicted and decoded anew";
  EXPECT_EQ(EVP_PKEY_eq(again.get(), oldest.get()), 1);
}

}  // namespace
}  // namespace mxguard::milter::dkim
