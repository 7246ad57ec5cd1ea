// Fuzzes the Authentication-Results parser: never crash; whatever parses must rebuild into a
// header that parses again to the same results (the builder never writes what we cannot read).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/authres/authres.h"

namespace ar = mxguard::common::authres;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)ar::claims_authserv_id(input, "mx.example.org");
  auto h = ar::parse(input);
  if (!h) return 0;
  ar::Builder b(h->authserv_id);
  for (const auto& r : h->results) b.add(r);
  auto again = ar::parse(b.value());
  if (!again || again->results.size() != h->results.size()) std::abort();
  for (std::size_t i = 0; i < h->results.size(); ++i) {
    if (again->results[i].method != h->results[i].method ||
        again->results[i].result != h->results[i].result ||
        again->results[i].properties != h->results[i].properties) {
      std::abort();
    }
  }
  return 0;
}
