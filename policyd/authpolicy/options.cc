// Binding and validation of mxguard-authpolicy's options (see options.h).
#include "policyd/authpolicy/options.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/config/checks.h"
#include "common/net/ip.h"
#include "common/net/socket_spec.h"

namespace mxguard::policyd::authpolicy {

std::vector<common::ratelimit::Limit> parse_limits(const std::vector<std::string>& texts,
                                                   bool blocks) {
  std::vector<common::ratelimit::Limit> out;
  for (const auto& t : texts) {
    auto l = common::ratelimit::Limit::parse(t);
    l.blocks = blocks;
    out.push_back(l);
  }
  return out;
}

void Options::bind(common::config::Binder& b) {
  daemon.bind(b);
  common::redis::bind_options(b, redis);
  b.add("api-header", api_header,
        "required request header 'Name: value', as Dovecot's auth_policy_server_api_header; "
        "empty = the text of api-header-file, if it exists");
  b.add("api-header-file", api_header_file,
        "file holding the 'Name: value' header when api-header is empty (the package writes a "
        "random key there; Dovecot reads it with auth_policy_server_api_header = </path)");
  b.add("allow-networks", allow_networks, "remote addresses that are never limited");
  b.add("threads", threads, "threads answering HTTP requests");
  b.add("max-connections", max_connections, "most concurrent HTTP connections");
  b.add("idle-timeout", idle_timeout,
        "close a connection idle (or a request unfinished) this long");
  b.add("max-body-size", max_body_size, "largest request body accepted");
  b.add("max-header-size", max_header_size, "largest request head (request line and headers)");
  b.add("ip-tarpit", ip_tarpit, "failed logins per remote address before attempts are delayed");
  b.add("ip-limits", ip_limits, "failed logins per remote address before it is blocked");
  b.add("net-tarpit", net_tarpit, "failed logins per remote network before attempts are delayed");
  b.add("net-limits", net_limits, "failed logins per remote network before it is blocked");
  b.add("ipv4-prefix", ipv4_prefix, "size of a remote IPv4 network");
  b.add("ipv6-prefix", ipv6_prefix, "size of a remote IPv6 network");
  b.add("login-tarpit", login_tarpit, "failed logins per login name before attempts are delayed");
  b.add("login-limits", login_limits,
        "failed logins per login name before the login is blocked everywhere; empty = never");
  b.add("repeat-tarpit", repeat_tarpit,
        "attempts with the same login and wrong password before they are delayed");
  b.add("block-time", block_time, "how long an address, network or login stays blocked");
  b.add("tarpit-delay", tarpit_delay, "delay at the first tarpit threshold");
  b.add("tarpit-max-delay", tarpit_max_delay,
        "longest delay (it grows by tarpit-delay per failure)");
  b.add("reset-on-success", reset_on_success,
        "a successful login clears its remote address's failure counters (not a block)");
  b.add("reject-message", reject_message, "msg of a reject answer (Dovecot logs it)");
  b.add("async-reports", async_reports,
        "answer reports at once and count them in pipelined batches (Dovecot ignores the answer)");
  b.add("report-queue", report_queue, "most reports waiting to be counted; more are dropped");
}

void Options::validate() const {
  using common::config::OptionError;
  daemon.validate();
  common::redis::validate_options(redis);
  try {
    auto spec = common::net::SocketSpec::parse(daemon.listen);
    if (spec.kind == common::net::SocketSpec::Kind::kUnix) {
      throw OptionError("listen",
                        "Dovecot's policy client speaks HTTP over TCP: use inet:HOST:PORT");
    }
  } catch (const std::invalid_argument& ex) {
    throw OptionError("listen", ex.what());
  }
  std::string header = effective_api_header();
  if (!header.empty()) {
    auto colon = header.find(':');
    if (colon == std::string::npos || colon == 0 || header.find_first_of(" \t", 0) < colon) {
      throw OptionError(api_header.empty() ? "api-header-file" : "api-header",
                        "expected 'Name: value', e.g. 'X-API-Key: secret'");
    }
  }
  common::config::require_networks("allow-networks", allow_networks);
  if (threads < 1 || threads > 256) throw OptionError("threads", "1 to 256");
  if (max_connections < 1) throw OptionError("max-connections", "must be at least 1");
  if (idle_timeout.value.count() < 1000) throw OptionError("idle-timeout", "at least 1s");
  if (max_body_size.bytes < 256 || max_body_size.bytes > 1024 * 1024) {
    throw OptionError("max-body-size", "256 bytes to 1M");
  }
  if (max_header_size.bytes < 1024 || max_header_size.bytes > 1024 * 1024) {
    throw OptionError("max-header-size", "1k to 1M");
  }
  auto check = [](const char* name, const std::vector<std::string>& v) {
    try {
      parse_limits(v, false);
    } catch (const std::invalid_argument& ex) {
      throw OptionError(name, ex.what());
    }
  };
  check("ip-tarpit", ip_tarpit);
  check("ip-limits", ip_limits);
  check("net-tarpit", net_tarpit);
  check("net-limits", net_limits);
  check("login-tarpit", login_tarpit);
  check("login-limits", login_limits);
  check("repeat-tarpit", repeat_tarpit);
  if (ipv4_prefix < 8 || ipv4_prefix > 32) throw OptionError("ipv4-prefix", "8 to 32");
  if (ipv6_prefix < 16 || ipv6_prefix > 128) throw OptionError("ipv6-prefix", "16 to 128");
  if (block_time.value.count() < 1000) throw OptionError("block-time", "at least 1s");
  if (tarpit_delay.value.count() < 1000) {
    throw OptionError("tarpit-delay", "at least 1s (Dovecot delays in whole seconds)");
  }
  if (tarpit_max_delay.value < tarpit_delay.value) {
    throw OptionError("tarpit-max-delay", "must not be shorter than tarpit-delay");
  }
  if (report_queue < 1 || report_queue > 1000000) throw OptionError("report-queue", "1 to 1000000");
  if (tarpit_max_delay.value > std::chrono::minutes(5)) {
    throw OptionError("tarpit-max-delay", "at most 5m");
  }
}

std::string Options::effective_api_header() const {
  if (!api_header.empty() || api_header_file.empty()) return api_header;
  std::ifstream in(api_header_file);
  if (!in) {
    if (api_header_file == kDefaultApiHeaderFile && errno == ENOENT) return "";
    throw common::config::OptionError(
        "api-header-file", api_header_file + ": cannot read (" + std::strerror(errno) + ")");
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

}  // namespace mxguard::policyd::authpolicy
