// mxguard-policyd's options: the only place their defaults live (docs/mxguard-policyd.md is
// checked against --dump-config). Must never accept a configuration it cannot serve with.
#pragma once

#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/daemon/daemon.h"
#include "common/dns/options.h"
#include "common/redis/options.h"
#include "policyd/greylist.h"
#include "policyd/greylist_selector.h"
#include "policyd/ratelimit_policy.h"
#include "policyd/spf_policy.h"

namespace mxguard::policyd {

struct Options {
  common::daemon::DaemonOptions daemon{.listen = "inet:127.0.0.1:10040"};
  common::redis::ClientOptions redis;
  std::vector<std::string> trusted_networks{"127.0.0.0/8", "::1"};
  std::vector<std::string> checks{"greylist"};
  unsigned threads = 4;
  // Connections (each with its own thread) carrying greylisting's pipelined Redis calls.
  unsigned redis_writers = 2;
  unsigned max_connections = 200;
  common::config::Duration idle_timeout{std::chrono::seconds(300)};
  common::dns::ResolverOptions dns;
  GreylistOptions greylist;
  SelectionOptions selection;  // selective greylisting (greylist-mode and its lists)
  SpfOptions spf;
  RateLimitOptions ratelimit;

  void bind(common::config::Binder& b);
  void validate() const;
};

}  // namespace mxguard::policyd
