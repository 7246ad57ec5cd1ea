// clamd's INSTREAM protocol as pure functions: the command, the length-prefixed chunk framing
// and the reply parser. No I/O here, so every byte clamd might send can be unit tested and
// fuzzed (tests/fuzz/fuzz_clamd_reply.cc). Must never report "clean" for anything but clamd's
// exact "stream: OK": an unexpected reply is an error, never an accidental accept.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mxguard::milter::av {

// "z" commands end in NUL, and so do clamd's replies to them.
inline constexpr std::string_view kInstreamCommand{"zINSTREAM\0", 10};
inline constexpr std::string_view kPingCommand{"zPING\0", 6};
// The zero-length chunk that ends a stream.
inline constexpr std::string_view kStreamTerminator{"\0\0\0\0", 4};
// Longest reply we read; clamd's longest is a virus name plus a few words.
inline constexpr std::size_t kMaxReplyBytes = 4096;
// Longest virus name we pass on into logs, headers and SMTP replies.
inline constexpr std::size_t kMaxVirusName = 200;

// The 4-byte network-order length that precedes each chunk.
std::string chunk_header(std::uint32_t length);
// A whole chunk: header + data (data must be non-empty: an empty chunk ends the stream).
std::string frame_chunk(std::string_view data);

struct ClamdReply {
  // kSizeLimit: clamd's StreamMaxLength is below what we sent. Retrying cannot change that,
  // so the milter treats it as oversize, not as an error to tempfail on.
  enum class Kind { kClean, kInfected, kError, kSizeLimit };
  Kind kind = Kind::kError;
  std::string virus;   // kInfected: the signature name (printable ASCII, ≤ kMaxVirusName)
  std::string detail;  // kError: what clamd said or what was wrong with the reply (escaped)
};

// Parses one reply to zINSTREAM (with or without its trailing NUL or newline):
//   "stream: OK"                           → kClean
//   "stream: NAME FOUND"                   → kInfected, virus = NAME
//   "INSTREAM size limit exceeded. ERROR"  → kSizeLimit, detail = the reply
//   "stream: ... ERROR", anything else     → kError
ClamdReply parse_instream_reply(std::string_view reply);

// True for clamd's answer to zPING ("PONG", NUL or newline terminated).
bool is_pong(std::string_view reply);

// Control characters and non-ASCII bytes as \xHH, cut to `limit` characters: for log lines.
std::string escape_for_log(std::string_view text, std::size_t limit = 200);

}  // namespace mxguard::milter::av
