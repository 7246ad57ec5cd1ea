// mxguard-av's options: the only place their defaults live (docs/mxguard-av.md is checked
// against --dump-config). Must never accept a configuration it cannot serve with: clamd
// addresses, sizes, actions and networks are all checked by validate().
#pragma once

#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/daemon/daemon.h"
#include "common/milter/engine_options.h"

namespace mxguard::milter::av {

struct Options {
  common::daemon::DaemonOptions daemon{.listen = "inet:127.0.0.1:8895"};

  // clamd servers in order of preference (unix:/path or inet:host:port); the next one is
  // tried when one cannot be reached.
  std::vector<std::string> clamd{"unix:/run/clamav/clamd.ctl"};
  common::config::Duration connect_timeout{std::chrono::seconds(2)};
  common::config::Duration scan_timeout{std::chrono::seconds(60)};
  common::config::Duration health_interval{std::chrono::seconds(10)};
  // Below clamd's StreamMaxLength (default 25M), which counts the whole stream.
  common::config::Size chunk_size{std::uint64_t{64} * 1024};
  common::config::Size max_size{std::uint64_t{25} * 1024 * 1024};

  std::string on_infected = "reject";           // reject|discard|quarantine|accept
  std::string reject_text = "Virus found: %v";  // %v: the virus name
  std::string on_error = "tempfail";   // clamd down, slow or answering garbage: tempfail|accept
  std::string on_oversize = "accept";  // larger than --max-size: accept|tempfail|reject
  bool add_header = true;              // X-Virus-Scanned and X-Virus-Status
  std::string header_host;             // "on <host>" in X-Virus-Scanned; empty: host name

  bool skip_authenticated = false;  // SASL-authenticated senders ({auth_authen})
  std::vector<std::string> skip_networks{"127.0.0.1/32", "::1/128"};
  // Addresses (user@example.org) or domains (example.org; .example.org for subdomains too).
  std::vector<std::string> allow_senders;
  std::vector<std::string> allow_recipients;

  std::string on_internal_error = "tempfail";  // an exception in a callback
  common::config::Duration milter_timeout{std::chrono::seconds(300)};
  common::milter::EngineOptions engine;  // milter-engine, milter-threads

  void bind(common::config::Binder& b);
  void validate() const;  // throws config::OptionError naming the option
};

}  // namespace mxguard::milter::av
