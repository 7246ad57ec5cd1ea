// Parsing and validation of resolver options (see options.h).
#include "common/dns/options.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdexcept>

namespace mxguard::common::dns {
namespace {

[[noreturn]] void fail(std::string_view entry, std::string_view why) {
  throw std::invalid_argument("invalid DNS server \"" + std::string(entry) +
                              "\": " + std::string(why));
}

bool is_ip(const std::string& text) {
  in6_addr buf{};
  return ::inet_pton(AF_INET, text.c_str(), &buf) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), &buf) == 1;
}

}  // namespace

std::string ServerSpec::unbound_form() const { return address + "@" + std::to_string(port); }

ServerSpec parse_server_spec(std::string_view entry) {
  ServerSpec spec;
  std::string_view host = entry;
  if (auto at = entry.find('@'); at != std::string_view::npos) {
    host = entry.substr(0, at);
    std::string_view port = entry.substr(at + 1);
    if (port.empty() || port.size() > 5) {
      fail(entry, "port must be 1-65535");
    }
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') {
        fail(entry, "port must be a decimal number");
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
      fail(entry, "port must be 1-65535");
    }
    spec.port = static_cast<std::uint16_t>(value);
  }
  if (host.empty()) {
    fail(entry, "missing address");
  }
  if (host.front() == '[') {
    fail(entry, "write IPv6 addresses without brackets (ip@port)");
  }
  spec.address = std::string(host);
  if (!is_ip(spec.address)) {
    fail(entry, "not an IPv4 or IPv6 address");
  }
  return spec;
}

std::vector<ServerSpec> validate(const ResolverOptions& options) {
  if (options.timeout.count() <= 0) {
    throw std::invalid_argument("DNS timeout must be positive");
  }
  std::vector<ServerSpec> specs;
  for (const auto& entry : options.servers) {
    specs.push_back(parse_server_spec(entry));
  }
  return specs;
}

}  // namespace mxguard::common::dns

#include "common/config/config.h"

namespace mxguard::common::dns {

void bind_options(config::Binder& b, ResolverOptions& o) {
  b.add("dns-servers", o.servers,
        "DNS servers to forward to, ip[@port] (empty: the system resolver)");
  b.add("dns-timeout", o.timeout, "deadline of every DNS query");
}

void validate_options(const ResolverOptions& o) {
  try {
    validate(o);
  } catch (const std::invalid_argument& ex) {
    throw config::OptionError(o.timeout.count() <= 0 ? "dns-timeout" : "dns-servers", ex.what());
  }
}

}  // namespace mxguard::common::dns
