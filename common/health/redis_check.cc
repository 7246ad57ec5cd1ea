// Implementation of the Redis health check (see redis_check.h).
#include "common/health/redis_check.h"

#include "common/redis/errors.h"

namespace mxguard::common::health {
namespace {

// One connection, and quiet: the daemon's own pool logs and counts what happens to the server;
// a second voice would log every outage twice and count every breaker trip and failover twice.
redis::ClientOptions one_connection(redis::ClientOptions o) {
  o.pool_size = 1;
  o.report_state = false;
  return o;
}

// The reason names the server once: the pool's messages mostly do already ("connect to URL:
// …", "redis URL is down (…)", the latter without its "redis " in front), others get it first.
metrics::Health::Result failed(const std::string& url, const std::string& what) {
  if (what.rfind("redis " + url, 0) == 0) return metrics::Health::Result::bad(what.substr(6));
  if (what.find(url) != std::string::npos) return metrics::Health::Result::bad(what);
  return metrics::Health::Result::bad(url + ": " + what);
}

}  // namespace

RedisCheck::RedisCheck(const redis::ClientOptions& options, std::chrono::milliseconds fresh)
    : pool_(one_connection(options)), fresh_(fresh) {}

metrics::Health::Result RedisCheck::operator()() {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (!have_result_ || now - checked_ >= fresh_) {
    result_ = ping();
    checked_ = std::chrono::steady_clock::now();
    have_result_ = true;
  }
  return result_;
}

metrics::Health::Result RedisCheck::ping() {
  const std::string url = pool_.url().redacted();
  for (int attempt = 0;; ++attempt) {
    try {
      redis::Reply r = pool_.command({"PING"});
      if (r.is_status() && r.as_string() == "PONG") return metrics::Health::Result::good();
      return failed(url, "unexpected answer to PING");
    } catch (const redis::TimeoutError& ex) {
      return failed(url, ex.what());  // waiting twice would double the delay
    } catch (const redis::IoError& ex) {
      // The kept connection may be from before a Redis restart: one more try reconnects (or,
      // with Redis down, fails fast in the pool's backoff).
      if (attempt == 1 || !pool_.up()) return failed(url, ex.what());
    } catch (const redis::Error& ex) {
      return failed(url, ex.what());
    }
  }
}

}  // namespace mxguard::common::health
