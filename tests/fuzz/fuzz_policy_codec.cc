// Fuzzes the Postfix policy codec: arbitrary bytes, fed in two pieces at a fuzzer-chosen split,
// must give the same result as feeding them at once, and never crash or exceed the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/policy/codec.h"

using mxguard::common::policy::Parser;

namespace {

struct Outcome {
  int complete = 0;
  bool error = false;
  std::size_t attrs = 0;
};

Outcome run(std::string_view data, std::size_t split) {
  Parser p(mxguard::common::policy::Limits{256, 2048, 16});
  Outcome o;
  for (std::string_view piece : {data.substr(0, split), data.substr(split)}) {
    while (!piece.empty() && !o.error) {
      std::size_t used = 0;
      auto s = p.feed(piece, used);
      if (used > piece.size()) std::abort();
      piece.remove_prefix(used);
      if (s == Parser::Status::kError) o.error = true;
      if (s == Parser::Status::kComplete) {
        auto req = p.take();
        if (req.size() > 16) std::abort();
        o.attrs += req.size();
        ++o.complete;
      }
      if (s == Parser::Status::kNeedMore && used == 0) break;
    }
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t split = size == 0 ? 0 : data[0] % (size + 1);
  Outcome whole = run(input, size);
  Outcome pieces = run(input, split);
  if (whole.complete != pieces.complete || whole.error != pieces.error ||
      whole.attrs != pieces.attrs) {
    std::abort();
  }
  auto reply = mxguard::common::policy::format_reply(input);
  if (reply.find('\n') != reply.size() - 2) std::abort();
  return 0;
}
