// Binding and validation of mxguard-policyd's options (see options.h).
#include "policyd/options.h"

#include <algorithm>

#include "common/config/checks.h"
#include "common/net/ip.h"

namespace mxguard::policyd {

void Options::bind(common::config::Binder& b) {
  daemon.bind(b);
  common::redis::bind_options(b, redis);
  b.add("trusted-networks", trusted_networks,
        "clients that are never checked (internal relays, localhost)");
  b.add("checks", checks, "checks to run at RCPT time, in order: spf, greylist, ratelimit");
  b.add("threads", threads, "worker threads answering policy requests");
  b.add("redis-writers", redis_writers,
        "Redis connections carrying greylisting's calls, pipelined across requests");
  b.add("max-connections", max_connections, "most concurrent Postfix connections");
  b.add("idle-timeout", idle_timeout, "close a policy connection idle this long");
  common::dns::bind_options(b, dns);
  greylist.bind(b);
  selection.bind(b);
  spf.bind(b);
  ratelimit.bind(b);
}

void Options::validate() const {
  using common::config::OptionError;
  daemon.validate();
  common::redis::validate_options(redis);
  common::config::require_networks("trusted-networks", trusted_networks);
  if (checks.empty()) throw OptionError("checks", "name at least one check");
  for (const auto& c : checks) {
    if (c != "greylist" && c != "spf" && c != "ratelimit") {
      throw OptionError("checks", "unknown check '" + c + "' (known: spf, greylist, ratelimit)");
    }
  }
  auto spf_at = std::find(checks.begin(), checks.end(), "spf");
  auto gl_at = std::find(checks.begin(), checks.end(), "greylist");
  bool spf_before_greylist = spf_at != checks.end() && spf_at < gl_at;
  if (greylist.spf_pass_by_domain && !spf_before_greylist) {
    throw OptionError("greylist-spf-pass-by-domain", "needs checks = spf, greylist");
  }
  if (threads < 1 || threads > 256) throw OptionError("threads", "1 to 256");
  if (redis_writers < 1 || redis_writers > 16) throw OptionError("redis-writers", "1 to 16");
  if (redis_writers > redis.pool_size) {
    throw OptionError("redis-writers",
                      "at most redis-pool-size (" + std::to_string(redis.pool_size) + ")");
  }
  if (max_connections < 1) throw OptionError("max-connections", "must be at least 1");
  if (idle_timeout.value.count() < 1000) throw OptionError("idle-timeout", "at least 1s");
  common::dns::validate_options(dns);
  greylist.validate();
  selection.validate(spf_before_greylist);
  spf.validate();
  ratelimit.validate();
}

}  // namespace mxguard::policyd
