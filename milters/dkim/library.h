// One configured libopendkim library handle (DKIM_LIB) and the RAII types for its handles.
// Signer and Verifier take their DKIM handles from here; the key-lookup and prescreen
// callbacks libopendkim calls are plain functions that find their Verifier through the
// handle's user context. Must never include libmilter, and never let an exception cross into
// libopendkim.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct dkim_lib;
struct dkim;

namespace mxguard::milter::dkim {

struct LibraryOptions {
  std::vector<std::string> sign_headers;  // empty: libopendkim's RFC 6376 default
  std::vector<std::string> oversign_headers;
  std::chrono::seconds signature_ttl{0};  // 0: no x=
  unsigned minimum_key_bits = 1024;
};

struct LibDeleter {
  void operator()(struct dkim_lib* lib) const;
};
struct HandleDeleter {
  void operator()(struct dkim* handle) const;
};
using HandlePtr = std::unique_ptr<struct dkim, HandleDeleter>;

class Library {
 public:
  // Throws std::runtime_error when libopendkim cannot be set up.
  explicit Library(LibraryOptions options = {});
  struct dkim_lib* get() const {
    return lib_.get();
  }
  const LibraryOptions& options() const { return options_; }

 private:
  LibraryOptions options_;
  // libopendkim keeps pointers to the option arrays: they live as long as the library.
  std::vector<std::string> sign_storage_, oversign_storage_;
  std::vector<const char*> sign_ptrs_, oversign_ptrs_;
  std::unique_ptr<struct dkim_lib, LibDeleter> lib_;
};

// "Name:raw value" as libopendkim wants a header: folded lines end in CRLF (the MTA hands
// continuation lines over with bare LF), no trailing CRLF. `raw_value` is the value with its
// leading white space (libmilter's SMFIP_HDR_LEADSPC).
std::string header_field(std::string_view name, std::string_view raw_value);

// libopendkim's name for a status, for error messages.
std::string status_text(int dkim_stat);

}  // namespace mxguard::milter::dkim
