// mxguard-milter's own options: which filters run, in which order, and where each filter's
// configuration file is (each filter keeps the file its daemon reads, so nothing new to learn).
// Must never accept a chain it cannot serve: validate() reads every named filter's file as its
// daemon would (errors name file:line) and refuses unknown, repeated or misordered filters.
#pragma once

#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/daemon/daemon.h"
#include "common/milter/engine_options.h"

namespace mxguard::milter::host {

struct Options {
  common::daemon::DaemonOptions daemon{.listen = "unix:/var/spool/postfix/mxguard/milter.sock"};
  std::vector<std::string> filters{"dkim", "dmarc", "av"};
  std::string dkim_config = "/etc/mxguard/dkim.conf";
  std::string dmarc_config = "/etc/mxguard/dmarc.conf";
  std::string av_config = "/etc/mxguard/av.conf";
  // The chain's own failures (outside any filter: each filter's on-internal-error applies to
  // its own): accept|tempfail|reject.
  std::string on_internal_error = "tempfail";
  common::config::Duration milter_timeout{std::chrono::seconds(300)};
  // Which implementation of the milter protocol serves the socket (common/milter/engine.h).
  common::milter::EngineOptions engine;

  void bind(common::config::Binder& b);
  void validate() const;
  // The configuration file of a filter named in `filters`.
  const std::string& config_of(const std::string& filter) const;
};

// The filters mxguard-milter knows, in their required relative order (dkim before dmarc:
// DMARC reads DKIM's results).
const std::vector<std::string>& known_filters();

}  // namespace mxguard::milter::host
