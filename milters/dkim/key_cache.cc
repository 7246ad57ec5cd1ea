// The parsed-key caches and the PEM_read_bio_PrivateKey / d2i_PUBKEY_bio interposers (see
// key_cache.h).
#include "milters/dkim/key_cache.h"

#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <atomic>
#include <list>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace mxguard::milter::dkim {
namespace {

struct Cache {
  std::shared_mutex mutex;
  std::map<std::string, EVP_PKEY*, std::less<>> keys;  // owns one reference each
  std::atomic<unsigned long> hits{0};
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: libopendkim may sign until exit
  return *c;
}

// What is left to read in a memory BIO; empty for any other kind of BIO.
std::string_view mem_contents(BIO* bio) {
  if (bio == nullptr || BIO_method_type(bio) != BIO_TYPE_MEM) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return {};
  return {data, static_cast<std::size_t>(n)};
}

EVP_PKEY* cached(BIO* bio) {
  std::string_view text = mem_contents(bio);
  if (text.empty()) return nullptr;
  Cache& c = cache();
  std::shared_lock lock(c.mutex);
  auto it = c.keys.find(text);
  if (it == c.keys.end()) return nullptr;
  if (EVP_PKEY_up_ref(it->second) != 1) return nullptr;
  c.hits.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

// Public keys by DER bytes, least recently used at the back. The index holds views of the
// list's strings (list nodes never move).
struct PublicKeys {
  std::mutex mutex;
  std::list<std::pair<std::string, EVP_PKEY*>> lru;  // owns one reference each
  std::unordered_map<std::string_view, std::list<std::pair<std::string, EVP_PKEY*>>::iterator>
      index;
  std::atomic<unsigned long> hits{0};
};

PublicKeys& public_keys() {
  static PublicKeys* c = new PublicKeys();  // never destroyed: verifications may run until exit
  return *c;
}

EVP_PKEY* cached_public_key(std::string_view der) {
  PublicKeys& c = public_keys();
  std::lock_guard lock(c.mutex);
  auto it = c.index.find(der);
  if (it == c.index.end()) return nullptr;
  if (EVP_PKEY_up_ref(it->second->second) != 1) return nullptr;
  c.lru.splice(c.lru.begin(), c.lru, it->second);
  c.hits.fetch_add(1, std::memory_order_relaxed);
  return it->second->second;
}

void remember_public_key(std::string der, EVP_PKEY* key) {
  PublicKeys& c = public_keys();
  std::lock_guard lock(c.mutex);
  if (c.index.count(der) != 0 || EVP_PKEY_up_ref(key) != 1) return;
  c.lru.emplace_front(std::move(der), key);
  c.index.emplace(c.lru.front().first, c.lru.begin());
  if (c.lru.size() > kPublicKeyCacheCapacity) {
    auto& last = c.lru.back();
    c.index.erase(last.first);
    EVP_PKEY_free(last.second);  // messages still verifying with it hold their own reference
    c.lru.pop_back();
  }
}

// Reads a memory BIO to its end, as a successful d2i_PUBKEY_bio of its whole content does.
void drain(BIO* bio) {
  char buf[256];
  while (BIO_read(bio, buf, sizeof buf) > 0) {
  }
}

}  // namespace

EVP_PKEY* public_key_from_bio(BIO* bio, EVP_PKEY* (*decode)(BIO*, EVP_PKEY**)) {
  std::string_view der = mem_contents(bio);
  if (!der.empty()) {
    if (EVP_PKEY* k = cached_public_key(der)) {
      drain(bio);
      return k;
    }
  }
  std::string copy(der);  // the BIO is consumed by the decode
  EVP_PKEY* k = decode != nullptr ? decode(bio, nullptr) : nullptr;
  // Only a decode of the whole content is cached: the key then stands for exactly these bytes.
  if (k != nullptr && !copy.empty() && BIO_pending(bio) == 0) remember_public_key(copy, k);
  return k;
}

unsigned long public_key_hits() { return public_keys().hits.load(std::memory_order_relaxed); }

std::size_t public_keys_cached() {
  PublicKeys& c = public_keys();
  std::lock_guard lock(c.mutex);
  return c.lru.size();
}

void remember_parsed_key(const std::string& pem, EVP_PKEY* key) {
  Cache& c = cache();
  std::unique_lock lock(c.mutex);
  if (c.keys.count(pem) != 0 || EVP_PKEY_up_ref(key) != 1) return;
  c.keys.emplace(pem, key);
}

unsigned long parsed_key_hits() { return cache().hits.load(std::memory_order_relaxed); }

}  // namespace mxguard::milter::dkim

// Interposes libcrypto's function for the whole process (an executable's definition wins over
// a shared library's); misses and every other use fall through to libcrypto's own.
extern "C" EVP_PKEY* PEM_read_bio_PrivateKey(BIO* bp, EVP_PKEY** x, pem_password_cb* cb, void* u) {
  using Fn = EVP_PKEY* (*)(BIO*, EVP_PKEY**, pem_password_cb*, void*);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "PEM_read_bio_PrivateKey"));
  if (x == nullptr) {
    if (EVP_PKEY* k = mxguard::milter::dkim::cached(bp)) return k;
  }
  return real != nullptr ? real(bp, x, cb, u) : nullptr;
}

// The same for libopendkim's decode of DNS key records. Only the plain form (no output
// argument) is cached; anything else goes to libcrypto's function unchanged.
extern "C" EVP_PKEY* d2i_PUBKEY_bio(BIO* bp, EVP_PKEY** a) {
  using Fn = EVP_PKEY* (*)(BIO*, EVP_PKEY**);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "d2i_PUBKEY_bio"));
  if (a != nullptr) return real != nullptr ? real(bp, a) : nullptr;
  return mxguard::milter::dkim::public_key_from_bio(bp, real);
}
