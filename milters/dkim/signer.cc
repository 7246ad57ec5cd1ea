// Signing on libopendkim (see signer.h).
#include "milters/dkim/signer.h"

#include <cstring>

#include "milters/dkim/opendkim_c.h"

namespace mxguard::milter::dkim {
namespace {
u_char* bytes(std::string_view s) {
  // libopendkim takes non-const pointers but does not write through them.
  return reinterpret_cast<u_char*>(const_cast<char*>(s.data()));
}
}  // namespace

Signer::Signer(const Library& lib, std::vector<SigningKey> keys, const std::string& id,
               SignOptions options)
    : keys_(std::move(keys)) {
  for (const auto& k : keys_) {
    DKIM_STAT stat = DKIM_STAT_OK;
    dkim_alg_t alg = k.key->type == KeyType::kRsa ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256;
    HandlePtr h(dkim_sign(lib.get(), reinterpret_cast<const u_char*>(id.c_str()), nullptr,
                          reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(k.key->pem.c_str())),
                          reinterpret_cast<const u_char*>(k.selector.c_str()),
                          reinterpret_cast<const u_char*>(k.domain.c_str()), DKIM_CANON_RELAXED,
                          DKIM_CANON_RELAXED, alg, -1, &stat));
    if (!h || stat != DKIM_STAT_OK) {
      throw SigningError("cannot start signing for d=" + k.domain + " s=" + k.selector + ": " +
                         status_text(stat));
    }
    if (options.body_length && dkim_setpartial(h.get(), true) != DKIM_STAT_OK) {
      throw SigningError("cannot request l= for d=" + k.domain);
    }
    handles_.push_back(std::move(h));
  }
}

void Signer::header(std::string_view field) {
  field = field.substr(0, field.find('\0'));  // see Verifier::header: libopendkim uses C strings
  if (field.empty()) return;                  // libopendkim asserts on an empty header
  for (auto& h : handles_) {
    DKIM_STAT stat = dkim_header(h.get(), bytes(field), field.size());
    if (stat != DKIM_STAT_OK) {
      throw SigningError("header rejected: " + status_text(stat) + ": " +
                         (dkim_geterror(h.get()) ? dkim_geterror(h.get()) : ""));
    }
  }
}

void Signer::end_of_headers() {
  for (auto& h : handles_) {
    DKIM_STAT stat = dkim_eoh(h.get());
    if (stat != DKIM_STAT_OK) {
      const char* e = dkim_geterror(h.get());
      throw SigningError("end of headers: " + status_text(stat) + (e ? std::string(": ") + e : ""));
    }
  }
}

void Signer::body(std::string_view chunk) {
  if (chunk.empty()) return;
  for (auto& h : handles_) {
    DKIM_STAT stat = dkim_body(h.get(), bytes(chunk), chunk.size());
    if (stat != DKIM_STAT_OK) throw SigningError("body: " + status_text(stat));
  }
}

std::vector<std::string> Signer::finish() {
  std::vector<std::string> out;
  const std::size_t initial = std::strlen(DKIM_SIGNHEADER) + 2;  // "DKIM-Signature: "
  for (std::size_t i = 0; i < handles_.size(); ++i) {
    DKIM* h = handles_[i].get();
    DKIM_STAT stat = dkim_eom(h, nullptr);
    if (stat != DKIM_STAT_OK) {
      const char* e = dkim_geterror(h);
      throw SigningError("signing with d=" + keys_[i].domain + " s=" + keys_[i].selector +
                         " failed: " + status_text(stat) + (e ? std::string(": ") + e : ""));
    }
    u_char* buf = nullptr;
    std::size_t len = 0;
    stat = dkim_getsighdr_d(h, initial, &buf, &len);
    if (stat != DKIM_STAT_OK || buf == nullptr) {
      throw SigningError("cannot build the DKIM-Signature: " + status_text(stat));
    }
    std::string value;
    for (std::size_t j = 0; j < len; ++j) {
      if (buf[j] == '\r') continue;  // the MTA wants folded headers with bare LF
      value.push_back(static_cast<char>(buf[j]));
    }
    out.push_back(std::move(value));
  }
  return out;
}

}  // namespace mxguard::milter::dkim
