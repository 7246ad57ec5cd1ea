// DKIM canonicalisation (RFC 6376 §3.4) as ARC uses it: header fields (simple, relaxed), the
// removal of a signature's b= value, and a streaming body canonicaliser that feeds SHA-256 as
// milter body chunks arrive. Written here because libopendkim does not expose its own. Memory
// is bounded: the body canonicaliser keeps two counters and a flag, never the body.
// Must never include libmilter and never treat anything but CRLF (or a bare LF, which MTAs
// turn into CRLF on the wire) as a line end.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "milters/arc/arc_headers.h"

namespace mxguard::milter::arc {

// One header field as the milter hands it: the name, and the value as received after the
// colon (leading white space kept, folds as "\n" or "\r\n").
// simple: "Name:value\r\n" with folds normalised to CRLF. relaxed: "name:value\r\n" with the
// value unfolded, white-space runs reduced to one SP and trimmed.
std::string canon_header(Canon c, std::string_view name, std::string_view value);

// The value with the b= tag's value removed (the tag itself kept), as §3.7 hashes the
// signature header. Works on the raw text so every other byte stays as the signer saw it.
std::string strip_b_value(std::string_view value);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string digest();  // 32 bytes; the object is done afterwards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streams a body through simple or relaxed canonicalisation into SHA-256.
class BodyHasher {
 public:
  explicit BodyHasher(Canon canon) : canon_(canon) {}
  void update(std::string_view chunk);
  std::string finish();  // the 32-byte bh= hash
  std::uint64_t canonical_bytes() const { return emitted_; }

 private:
  void content(char c);
  void end_of_line();
  void flush_pending();
  void emit(std::string_view s);

  Canon canon_;
  Sha256 hash_;
  std::uint64_t emitted_ = 0;
  std::uint64_t empty_lines_ = 0;  // empty lines not yet hashed: they may be the trailing ones
  bool pending_cr_ = false;        // a CR at the end of the last chunk
  bool pending_wsp_ = false;       // relaxed: white space seen since the last content byte
  bool line_has_content_ = false;
  bool any_content_ = false;
  char buf_[4096];
  std::size_t buf_len_ = 0;
};

}  // namespace mxguard::milter::arc
