// Fuzzes clamd's INSTREAM reply parser: never crash; "clean" only for the exact "stream: OK"
// (with optional NUL/newline terminators); an infected verdict always carries a printable
// name; whatever is logged is free of control characters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "milters/av/clamd_protocol.h"
#include "milters/av/verdict.h"

namespace av = mxguard::milter::av;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  av::ClamdReply r = av::parse_instream_reply(input);
  std::string_view trimmed = input;
  while (!trimmed.empty() &&
         (trimmed.back() == '\0' || trimmed.back() == '\n' || trimmed.back() == '\r')) {
    trimmed.remove_suffix(1);
  }
  switch (r.kind) {
    case av::ClamdReply::Kind::kClean:
      if (trimmed != "stream: OK") std::abort();
      break;
    case av::ClamdReply::Kind::kInfected:
      if (r.virus.empty() || r.virus.size() > av::kMaxVirusName) std::abort();
      for (unsigned char c : r.virus) {
        if (c <= 0x20 || c >= 0x7f) std::abort();
      }
      if (av::status_header({av::ScanOutcome::Kind::kInfected, r.virus, ""}).find('\n') !=
          std::string::npos) {
        std::abort();
      }
      break;
    case av::ClamdReply::Kind::kSizeLimit:
      if (trimmed.substr(0, 28) != "INSTREAM size limit exceeded") std::abort();
      [[fallthrough]];
    case av::ClamdReply::Kind::kError:
      if (r.detail.empty()) std::abort();
      for (unsigned char c : r.detail) {
        if (c < 0x20 || c >= 0x7f) std::abort();
      }
      break;
  }
  (void)av::is_pong(input);
  return 0;
}
