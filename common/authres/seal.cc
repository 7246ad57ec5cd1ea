// Authentication-Results seals (see seal.h).
#include "common/authres/seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace mxguard::common::authres {
namespace {

constexpr std::string_view kOpen = "(mxguard-seal=";
constexpr std::size_t kHexLength = 32;  // 128 bits of the HMAC

// The value as signed: without the seal, and without any white space (milters see folding and
// the space after the colon differently from how the writer wrote them).
std::string canonical(std::string_view value) {
  std::string out;
  for (char c : strip_seal(value)) {
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  }
  return out;
}

std::string mac(std::string_view secret, std::string_view queue_id, std::string_view value) {
  std::string data = "mxguard-authres-seal\n" + std::string(queue_id) + "\n" + canonical(value);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len)) {
    return "";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len && hex.size() < kHexLength; ++i) {
    hex.push_back(kHex[out[i] >> 4]);
    hex.push_back(kHex[out[i] & 15]);
  }
  return hex;
}

// The seal's hex digits, if the value ends in a seal comment.
std::optional<std::string> seal_of(std::string_view value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  auto open = value.rfind(kOpen);
  if (open == std::string_view::npos || value.back() != ')') return std::nullopt;
  std::string_view hex = value.substr(open + kOpen.size());
  hex.remove_suffix(1);
  if (hex.size() != kHexLength) return std::nullopt;
  return std::string(hex);
}

bool equal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::optional<std::string> load_hop_secret(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw std::runtime_error(path + ": cannot read hop secret (" + std::strerror(errno) + ")");
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);
  if (text.size() < 16) {
    throw std::runtime_error(path + ": hop secret shorter than 16 characters");
  }
  return text;
}

std::optional<std::string> configured_hop_secret(const std::string& path) {
  if (path.empty()) return std::nullopt;
  auto secret = load_hop_secret(path);
  if (!secret && path != kDefaultHopSecretFile) {
    throw std::runtime_error(path + ": hop secret file does not exist");
  }
  return secret;
}

std::string add_seal(std::string value, std::string_view secret, std::string_view queue_id) {
  std::string hex = mac(secret, queue_id, value);
  return value + " " + std::string(kOpen) + hex + ")";
}

SealCheck check_seal(std::string_view value, std::string_view secret, std::string_view queue_id) {
  auto hex = seal_of(value);
  if (!hex || secret.empty()) return SealCheck::kNone;
  if (!queue_id.empty() && equal(*hex, mac(secret, queue_id, value))) return SealCheck::kMessage;
  if (equal(*hex, mac(secret, "", value))) return SealCheck::kHop;
  return SealCheck::kNone;
}

std::string strip_seal(std::string_view value) {
  std::string_view v = value;
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  auto open = v.rfind(kOpen);
  if (open == std::string_view::npos || v.empty() || v.back() != ')') return std::string(value);
  v = v.substr(0, open);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  return std::string(v);
}

}  // namespace mxguard::common::authres
