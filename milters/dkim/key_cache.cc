// The parsed-key cache and the PEM_read_bio_PrivateKey interposer (see key_cache.h).
#include "milters/dkim/key_cache.h"

#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string_view>

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

EVP_PKEY* cached(BIO* bio) {
  if (bio == nullptr || BIO_method_type(bio) != BIO_TYPE_MEM) return nullptr;
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return nullptr;
  Cache& c = cache();
  std::shared_lock lock(c.mutex);
  auto it = c.keys.find(std::string_view(data, static_cast<std::size_t>(n)));
  if (it == c.keys.end()) return nullptr;
  if (EVP_PKEY_up_ref(it->second) != 1) return nullptr;
  c.hits.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

}  // namespace

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
