// Fuzzes the DNS rdata decoders with arbitrary bytes for every record type we read: answers
// from the network (a hostile zone) must decode or be refused, never crash or over-read.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/dns/wire.h"

namespace wire = mxguard::common::dns;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  wire::Bytes rdata(data + 1, size - 1);
  static constexpr std::uint16_t kTypes[] = {
      wire::kTypeA,   wire::kTypeAaaa,  wire::kTypeMx, wire::kTypeTxt,
      wire::kTypePtr, wire::kTypeCname, wire::kTypeNs, 99};
  std::uint16_t type = kTypes[data[0] % (sizeof kTypes / sizeof kTypes[0])];
  auto text = wire::rdata_to_text(type, rdata);
  if (type == wire::kTypeTxt && text && text->size() > rdata.size()) std::abort();
  std::size_t pos = 0;
  auto name = wire::read_name(rdata, pos);
  if (name && pos > rdata.size()) std::abort();
  // Presentation form escapes odd bytes as \DDD: at most 4 characters per wire byte.
  if (name && name->size() > 4 * 255) std::abort();
  return 0;
}
