// Typed errors of the Redis client, so callers can map trouble to an outcome: any IoError
// (including TimeoutError) means "Redis unavailable" (tempfail or fail open), a ReplyError is a
// server-side refusal (WRONGTYPE, NOAUTH, ...) and usually a bug or a misconfiguration.
// Must never be thrown from outside common/redis: the C boundary is the one place that maps
// hiredis failures to these types.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace mxguard::common::redis {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Connection refused, reset or lost; the server is down or unreachable.
class IoError : public Error {
 public:
  using Error::Error;
};

// A connect, command or pool wait took longer than its configured timeout.
class TimeoutError : public IoError {
 public:
  using IoError::IoError;
};

// The server said something we cannot parse, or a reply had an unexpected type.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// An error reply from the server; what() is the server's message (e.g. "WRONGTYPE ...").
class ReplyError : public Error {
 public:
  using Error::Error;
};

namespace detail {

// Each of these counts the error in mxguard_redis_errors_total{kind=...} and throws it, so that
// no error leaves common/redis uncounted.
[[noreturn]] void throw_io(const std::string& message);
[[noreturn]] void throw_timeout(const std::string& message);
[[noreturn]] void throw_protocol(const std::string& message);
[[noreturn]] void throw_reply(const std::string& message);

}  // namespace detail
}  // namespace mxguard::common::redis
