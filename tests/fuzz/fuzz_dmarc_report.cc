// Fuzzes the DMARC report path from a published rua= to the message we send: rua parsing
// (percent-decoding once, the strict address check), the form the address is stored in Redis
// and read back as, the destination's domain, and the report message's headers.
// Invariants: a destination is a strict addr-spec whose domain is the one the §7.1 check uses;
// storing and re-reading it changes nothing (no second decoding); the To: header is one line
// holding exactly that address.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "milters/dmarc/record.h"
#include "milters/dmarc/report.h"

namespace dmarc = mxguard::milter::dmarc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto uris = dmarc::parse_uri_list(input);
  std::string stored;
  for (const auto& uri : uris) {
    auto parsed = dmarc::parse_report_address(uri.address);
    if (!parsed || parsed->domain != uri.domain) std::abort();
    if (uri.address != parsed->local + "@" + parsed->domain) std::abort();
    for (char c : uri.address) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '"' || c == '<' || c == '>' ||
          c == ',' || c == '%' || c == '!' || c == '\\') {
        std::abort();
      }
    }
    if (!stored.empty()) stored += ',';
    stored += uri.encode();  // as aggregate.cc stores it

    dmarc::ReporterInfo info{"fuzz", "noreply@receiver.test", "", "receiver.test"};
    dmarc::Period p;
    p.domain = "example.test";
    p.begin = 1700000000;
    p.end = 1700086400;
    std::string m = dmarc::report_message(info, p, uri.address, "gz", 1700090000);
    std::string_view headers(m);
    headers = headers.substr(0, headers.find("\r\n\r\n"));
    std::string want = "\r\nTo: <" + uri.address + ">\r\n";
    if (m.find(want) == std::string::npos) std::abort();
    // Every header line starts with a field name (no line was split by the address).
    std::size_t pos = 0;
    while (pos < headers.size()) {
      auto eol = headers.find("\r\n", pos);
      std::string_view line = headers.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
      if (line.empty() || line.find(':') == std::string_view::npos || line.front() == ' ') {
        std::abort();
      }
      if (eol == std::string_view::npos) break;
      pos = eol + 2;
    }
  }
  // Read back from Redis: the same destinations, nothing decoded twice.
  auto again = dmarc::parse_uri_list(stored);
  if (again.size() != uris.size()) std::abort();
  for (std::size_t i = 0; i < uris.size(); ++i) {
    if (again[i].address != uris[i].address || again[i].max_size != uris[i].max_size) {
      std::abort();
    }
  }
  return 0;
}
