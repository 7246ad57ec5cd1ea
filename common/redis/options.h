// Client settings shared by every Redis user (--redis-url, --redis-timeout, --redis-prefix).
// The in-class defaults are the only place these defaults live. Must never allow an infinite
// timeout: a hung Redis must end in an IoError, not in a stuck mail transaction.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace mxguard::common::redis {

struct ClientOptions {
  std::string url = "redis://127.0.0.1:6379/0";
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{500};  // also the longest wait for a free connection
  std::size_t pool_size = 8;
  // While Redis is down the pool tries one connect per backoff interval, doubling from min to max.
  std::chrono::milliseconds reconnect_backoff_min{100};
  std::chrono::milliseconds reconnect_backoff_max{5000};
  // This many command timeouts in a row (no success between) mark Redis down: fail fast and
  // probe in the background instead of every caller waiting command_timeout (the breaker).
  std::size_t breaker_threshold = 3;
  std::string prefix = "mxg:";  // namespace of every key we write (DESIGN.md §6)
  // Whether this client logs and counts what it sees of the server (down/up, breaker trips,
  // connects, failovers). Not an option: false only for a second client that watches the same
  // server as the daemon's own pool (the /healthz check), so nothing is said or counted twice.
  bool report_state = true;
};

}  // namespace mxguard::common::redis

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::common::redis {

// Binds --redis-url, --redis-timeout, --redis-connect-timeout, --redis-prefix,
// --redis-pool-size and --redis-breaker-threshold to the fields of `o` (their defaults are the
// in-class ones above).
void bind_options(config::Binder& b, ClientOptions& o);
// Throws config::OptionError naming the option.
void validate_options(const ClientOptions& o);

}  // namespace mxguard::common::redis
