// Implementation of the counted throw helpers (see errors.h). Must never log: a failing call
// is counted here, and the pool logs only state changes, so a dead Redis cannot flood syslog.
#include "common/redis/errors.h"

#include "common/metrics/metrics.h"

namespace mxguard::common::redis::detail {
namespace {

void count(const char* kind) {
  // Looked up per error rather than cached: errors are rare, and the registry makes it cheap.
  metrics::Registry::global()
      .counter("mxguard_redis_errors_total", "Redis client errors by kind", {{"kind", kind}})
      .inc();
}

}  // namespace

void throw_io(const std::string& message) {
  count("io");
  throw IoError(message);
}

void throw_timeout(const std::string& message) {
  count("timeout");
  throw TimeoutError(message);
}

void throw_protocol(const std::string& message) {
  count("protocol");
  throw ProtocolError(message);
}

void throw_reply(const std::string& message) {
  // NOSCRIPT is the normal signal that a script must be (re)loaded, handled by eval(); counting
  // it would make every Redis restart look like a burst of failures.
  if (message.rfind("NOSCRIPT", 0) != 0) {
    count("reply");
  }
  throw ReplyError(message);
}

}  // namespace mxguard::common::redis::detail
