// Configuration binding of the Redis client options (see options.h).
#include "common/redis/options.h"

#include "common/config/config.h"
#include "common/redis/url.h"

namespace mxguard::common::redis {

void bind_options(config::Binder& b, ClientOptions& o) {
  b.add("redis-url", o.url,
        "Redis server: redis://[user:pass@]host:port/db, unix:///path?db=N, or "
        "sentinel://[user:pass@]host:port,host:port/master-name/db for Redis Sentinel");
  b.add("redis-timeout", o.command_timeout,
        "longest wait for one Redis command (and for a free pooled connection)");
  b.add("redis-connect-timeout", o.connect_timeout, "longest wait for a Redis connect");
  b.add("redis-prefix", o.prefix, "namespace prefix of every Redis key");
  b.add("redis-pool-size", o.pool_size, "most Redis connections this process opens");
  b.add("redis-breaker-threshold", o.breaker_threshold,
        "consecutive Redis command timeouts after which calls fail fast while a background "
        "probe waits for Redis to answer");
}

void validate_options(const ClientOptions& o) {
  try {
    Url::parse(o.url);
  } catch (const std::invalid_argument& ex) {
    throw config::OptionError("redis-url", ex.what());
  }
  if (o.command_timeout.count() <= 0) throw config::OptionError("redis-timeout", "must be > 0");
  if (o.connect_timeout.count() <= 0) {
    throw config::OptionError("redis-connect-timeout", "must be > 0");
  }
  if (o.pool_size == 0) throw config::OptionError("redis-pool-size", "must be at least 1");
  if (o.breaker_threshold == 0) {
    throw config::OptionError("redis-breaker-threshold", "must be at least 1");
  }
}

}  // namespace mxguard::common::redis
