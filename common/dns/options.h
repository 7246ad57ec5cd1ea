// Resolver options and the parsing of `--dns-servers` entries ("ip[@port]").
// Must never accept an entry it cannot forward to: a typo here would silently turn every SPF
// lookup into a temperror, so bad input fails at start-up with std::invalid_argument.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::dns {

struct ResolverOptions {
  // Empty: the system resolver (nameservers from /etc/resolv.conf). Else "ip[@port]" entries,
  // IPv4 or IPv6, port 53 by default.
  std::vector<std::string> servers;
  // Deadline of every query, blocking or asynchronous. Must be positive: every timeout is finite.
  std::chrono::milliseconds timeout{5000};
  bool cache = true;
  // mxguard's own answer cache (in front of unbound's): total bytes, and the largest single
  // answer worth keeping. Names are chosen by senders, so the bound is in bytes, not entries.
  std::size_t cache_max_bytes = 16 * 1024 * 1024;
  std::size_t cache_max_answer_bytes = 16 * 1024;
};

struct ServerSpec {
  std::string address;  // as given, validated with inet_pton
  std::uint16_t port = 53;

  std::string unbound_form() const;  // "ip@port", what ub_ctx_set_fwd takes
};

// Parses "192.0.2.1", "192.0.2.1@5353", "2001:db8::1", "::1@5353".
// Throws std::invalid_argument naming the entry and what is wrong with it.
ServerSpec parse_server_spec(std::string_view entry);

// Checks servers and timeout; throws std::invalid_argument on the first problem.
std::vector<ServerSpec> validate(const ResolverOptions& options);

}  // namespace mxguard::common::dns

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::common::dns {

// Binds --dns-servers and --dns-timeout to the fields of `o`.
void bind_options(config::Binder& b, ResolverOptions& o);
// Throws config::OptionError naming the option.
void validate_options(const ResolverOptions& o);

}  // namespace mxguard::common::dns
