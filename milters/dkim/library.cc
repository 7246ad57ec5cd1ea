// libopendkim set-up (see library.h).
#include "milters/dkim/library.h"

#include <stdexcept>

#include "milters/dkim/opendkim_c.h"

namespace mxguard::milter::dkim {

namespace detail {
void install_verifier_callbacks(DKIM_LIB* lib);  // verifier.cc
}

void LibDeleter::operator()(DKIM_LIB* lib) const { dkim_close(lib); }
void HandleDeleter::operator()(DKIM* handle) const { dkim_free(handle); }

namespace {
void set_option(DKIM_LIB* lib, int opt, void* value, std::size_t size, const char* what) {
  if (dkim_options(lib, DKIM_OP_SETOPT, opt, value, size) != DKIM_STAT_OK) {
    throw std::runtime_error(std::string("libopendkim rejected option ") + what);
  }
}
}  // namespace

Library::Library(LibraryOptions options) : options_(std::move(options)) {
  lib_.reset(dkim_init(nullptr, nullptr));
  if (!lib_) throw std::runtime_error("dkim_init failed");
  DKIM_LIB* lib = lib_.get();
  // FIXCRLF: a bare LF in the body is treated as CRLF, as the MTA will send it on.
  unsigned int flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
  set_option(lib, DKIM_OPTS_FLAGS, &flags, sizeof flags, "flags");
  auto to_ptrs = [](const std::vector<std::string>& in, std::vector<std::string>& storage,
                    std::vector<const char*>& ptrs) {
    storage = in;
    ptrs.clear();
    for (const auto& s : storage) ptrs.push_back(s.c_str());
    ptrs.push_back(nullptr);
  };
  if (!options_.sign_headers.empty()) {
    to_ptrs(options_.sign_headers, sign_storage_, sign_ptrs_);
    set_option(lib, DKIM_OPTS_SIGNHDRS, sign_ptrs_.data(), sizeof(char**), "sign-headers");
  }
  if (!options_.oversign_headers.empty()) {
    to_ptrs(options_.oversign_headers, oversign_storage_, oversign_ptrs_);
    set_option(lib, DKIM_OPTS_OVERSIGNHDRS, oversign_ptrs_.data(), sizeof(char**),
               "oversign-headers");
  }
  if (options_.signature_ttl.count() > 0) {
    std::uint64_t ttl = static_cast<std::uint64_t>(options_.signature_ttl.count());
    set_option(lib, DKIM_OPTS_SIGNATURETTL, &ttl, sizeof ttl, "signature-ttl");
  }
  unsigned int bits = options_.minimum_key_bits;
  set_option(lib, DKIM_OPTS_MINKEYBITS, &bits, sizeof bits, "minimum-key-bits");
  detail::install_verifier_callbacks(lib);
}

std::string header_field(std::string_view name, std::string_view raw_value) {
  std::string out;
  out.reserve(name.size() + raw_value.size() + 8);
  out.append(name);
  out.push_back(':');
  for (std::size_t i = 0; i < raw_value.size(); ++i) {
    char c = raw_value[i];
    if (c == '\n' && (i == 0 || raw_value[i - 1] != '\r')) out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

std::string status_text(int stat) {
  const char* s = dkim_getresultstr(stat);
  return s ? s : ("status " + std::to_string(stat));
}

}  // namespace mxguard::milter::dkim
