// Fuzzes selective greylisting's DNS list sites (policyd/dns_lists.h): the first line is a
// site in `zone[=filter]` syntax (config, not network input, but a parser all the same: a bad
// one must be std::invalid_argument, never a crash), every further line an answer record. A
// parsed site must print back to itself, build a bounded query name for IPv4 and IPv6
// clients, and never accept an answer outside 127.0.0.0/8.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/net/ip.h"
#include "policyd/dns_lists.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mxguard::common::net::IpAddress;
  using mxguard::policyd::DnsListSite;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto nl = input.find('\n');
  std::string_view first = input.substr(0, nl);
  input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
  DnsListSite site;
  try {
    site = DnsListSite::parse(first);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (!(DnsListSite::parse(mxguard::policyd::format_value(site)) == site)) std::abort();
  for (const char* client : {"192.0.2.1", "2001:db8::1"}) {
    if (site.query_name(*IpAddress::parse(client)).size() > 253) std::abort();
  }
  while (!input.empty()) {
    nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
    auto ip = IpAddress::parse(line);
    if (ip && site.accepts(*ip) && !(ip->is_v4() && ip->bytes()[0] == 127)) std::abort();
  }
  return 0;
}
