// mxguard-policyd's /healthz checks (see health.h).
#include "policyd/health.h"

#include <algorithm>

namespace mxguard::policyd {

HealthCheckedService::HealthCheckedService(const Options& o)
    : PolicyService(o), redis_check_(o.redis), uses_redis_(uses_redis(o)) {}

bool HealthCheckedService::uses_redis(const Options& o) {
  return std::any_of(o.checks.begin(), o.checks.end(),
                     [](const std::string& c) { return c == "greylist" || c == "ratelimit"; });
}

void HealthCheckedService::reload(const Options& fresh) {
  PolicyService::reload(fresh);  // throws: the running checks stay, and so does this
  uses_redis_ = uses_redis(fresh);
}

void HealthCheckedService::add_health_checks(common::metrics::Health& health) {
  health.add("redis", [this] {
    return uses_redis_ ? redis_check_() : common::metrics::Health::Result::good();
  });
}

}  // namespace mxguard::policyd
