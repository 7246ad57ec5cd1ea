// Implementation of Script (see script.h). Must never hash differently from Redis: SCRIPT LOAD
// returns the SHA1 of the exact source bytes, and EVALSHA finds the script only by that value.
#include "common/redis/script.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace mxguard::common::redis {

std::string sha1_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("SHA1 computation failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::size_t{size} * 2);
  for (unsigned int i = 0; i < size; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

Script::Script(std::string name, std::string source)
    : name_(std::move(name)), source_(std::move(source)), sha1_(sha1_hex(source_)) {}

}  // namespace mxguard::common::redis
