// mxguard-policyd's /healthz checks: PolicyService plus "redis" while a check that needs Redis
// (greylist, ratelimit) is among --checks; SPF alone needs none, and the DNS resolver is no
// check (a DNS failure is an SPF temperror by design, and every MX shares the resolver's
// fate). The Redis check has a connection of its own (common/health/redis_check.h), so it
// needs nothing from the service but the configured checks. Must never change a decision.
#pragma once

#include <atomic>

#include "common/health/redis_check.h"
#include "common/metrics/health.h"
#include "policyd/policy_service.h"

namespace mxguard::policyd {

class HealthCheckedService : public PolicyService {
 public:
  explicit HealthCheckedService(const Options& o);
  void reload(const Options& fresh) override;
  void add_health_checks(common::metrics::Health& health) override;

 private:
  static bool uses_redis(const Options& o);

  common::health::RedisCheck redis_check_;
  std::atomic<bool> uses_redis_;  // follows --checks across reloads
};

}  // namespace mxguard::policyd
