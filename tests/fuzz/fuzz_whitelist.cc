// Fuzzes policyd's postgrey-format whitelists: every line of the input is a whitelist entry,
// given to both the client and the recipient list (a bad one must be a runtime_error naming
// the place, never a crash); then the lists are asked about a client name, address and
// recipient from the input's first line ("NAME IP RECIPIENT"). Regex entries are parsed but,
// once one is loaded, not matched: std::regex backtracks without bound on patterns an admin
// would never write, and the admin, not the sender, writes these files.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/net/ip.h"
#include "policyd/whitelist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto next_line = [&input]() {
    auto nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
    return line;
  };
  std::string_view head = next_line();
  auto word = [&head]() {
    auto sp = head.find(' ');
    std::string_view w = head.substr(0, sp);
    head.remove_prefix(sp == std::string_view::npos ? head.size() : sp + 1);
    return std::string(w);
  };
  std::string name = word(), ip_text = word(), recipient = word();

  mxguard::policyd::ClientWhitelist clients;
  mxguard::policyd::RecipientWhitelist recipients;
  bool regex = false;
  int n = 0;
  while (!input.empty()) {
    std::string_view line = next_line();
    ++n;
    if (line.size() > 256) continue;
    if (!line.empty() && line.front() == '/') {
      if (line.size() > 32) continue;
      regex = true;
    }
    try {
      clients.add_entry(line, "fuzz:" + std::to_string(n));
    } catch (const std::runtime_error&) {
    }
    try {
      recipients.add_entry(line, "fuzz:" + std::to_string(n));
    } catch (const std::runtime_error&) {
    }
  }
  if (regex) return 0;
  auto ip = mxguard::common::net::IpAddress::parse(ip_text);
  if (ip) (void)clients.matches(name, *ip);
  (void)recipients.matches(recipient);
  return 0;
}
