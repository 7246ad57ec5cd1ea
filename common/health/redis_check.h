// The /healthz check (common/metrics/health.h) of a daemon that cannot do its job without
// Redis: healthy while Redis answered recently. The check PINGs on a one-connection pool of its
// own, built from the daemon's Redis options (same server, credentials and timeouts), so a busy
// daemon whose connections are all lent to mail never makes the check wait or fail, and an idle
// daemon still notices a dead Redis. That pool is quiet (ClientOptions::report_state): the
// daemon's own pool is the one that logs outages and counts trips and failovers. While Redis
// is down the check's pool answers at once and probes in the background (common/redis/pool.h),
// so the check turns healthy as soon as Redis answers again. Must never ask Redis more than once
// per `fresh` interval, however often a load balancer asks, and never wait longer than the Redis
// timeouts allow.
#pragma once

#include <chrono>
#include <mutex>

#include "common/metrics/health.h"
#include "common/redis/options.h"
#include "common/redis/pool.h"

namespace mxguard::common::health {

class RedisCheck {
 public:
  explicit RedisCheck(const redis::ClientOptions& options,
                      std::chrono::milliseconds fresh = std::chrono::seconds(2));
  RedisCheck(const RedisCheck&) = delete;
  RedisCheck& operator=(const RedisCheck&) = delete;

  // The last answer if it is younger than `fresh`, else a PING now. Thread-safe.
  metrics::Health::Result operator()();

 private:
  metrics::Health::Result ping();

  redis::Pool pool_;
  const std::chrono::milliseconds fresh_;
  std::mutex mutex_;  // held while pinging: a second caller waits for that answer
  std::chrono::steady_clock::time_point checked_{};
  bool have_result_ = false;
  metrics::Health::Result result_;
};

}  // namespace mxguard::common::health
