// mxguard-authpolicy's options: the only place their defaults live (docs/mxguard-authpolicy.md
// is checked against --dump-config). Must never accept a configuration it cannot serve with.
#pragma once

#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/daemon/daemon.h"
#include "common/ratelimit/ratelimit.h"
#include "common/redis/options.h"

namespace mxguard::policyd::authpolicy {

using namespace std::chrono_literals;

struct Options {
  common::daemon::DaemonOptions daemon{.listen = "inet:127.0.0.1:10060"};
  common::redis::ClientOptions redis;
  // "Name: value" as Dovecot's auth_policy_server_api_header; empty: no check.
  std::string api_header;
  // Where the header comes from when api-header is empty: the package's postinst writes a
  // random key there, and Dovecot's snippet reads the same file (`= </path`). A missing
  // default file means no check (with a warning); a missing file the admin named is an error.
  std::string api_header_file = kDefaultApiHeaderFile;
  static constexpr const char* kDefaultApiHeaderFile = "/etc/mxguard/authpolicy-api-header";
  std::vector<std::string> allow_networks{"127.0.0.0/8", "::1"};
  unsigned threads = 4;
  unsigned max_connections = 256;
  common::config::Duration idle_timeout{60s};
  common::config::Size max_body_size{std::uint64_t{16} * 1024};
  common::config::Size max_header_size{std::uint64_t{8} * 1024};

  // Failed logins per remote address, per remote network, per login, per (login, password
  // hash). "-tarpit" limits delay the next attempt, "-limits" block for --block-time.
  std::vector<std::string> ip_tarpit{"3/10m"};
  std::vector<std::string> ip_limits{"10/10m", "50/1d"};
  std::vector<std::string> net_tarpit{"10/10m"};
  std::vector<std::string> net_limits{"50/10m", "200/1d"};
  unsigned ipv4_prefix = 24;
  unsigned ipv6_prefix = 64;
  std::vector<std::string> login_tarpit{"5/10m"};
  std::vector<std::string> login_limits{};  // blocking a login locks its owner out: off
  std::vector<std::string> repeat_tarpit{"30/1h"};
  common::config::Duration block_time{1h};
  common::config::Duration tarpit_delay{2s};
  common::config::Duration tarpit_max_delay{15s};
  bool reset_on_success = true;
  std::string reject_message = "Too many failed logins, try again later";
  // Answer reports at once and count them in batches (Dovecot ignores the answer to a report).
  bool async_reports = true;
  unsigned report_queue = 10000;  // reports waiting to be counted; more are dropped

  void bind(common::config::Binder& b);
  void validate() const;
  // api-header, else the file's text (trailing white space removed), else "". Throws
  // OptionError for an unreadable file the admin named.
  std::string effective_api_header() const;
};

// A list of "N/window" texts; throws std::invalid_argument.
std::vector<common::ratelimit::Limit> parse_limits(const std::vector<std::string>& texts,
                                                   bool blocks);

}  // namespace mxguard::policyd::authpolicy
