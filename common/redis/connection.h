// One synchronous connection to Redis over hiredis: connect (TCP or unix socket, with a
// timeout), AUTH, SELECT, binary-safe commands, pipelines and scripts.
// Not thread-safe: one thread at a time, which Pool guarantees. Must never be reused after an
// I/O error or a timeout (broken() is then true): a late reply would answer the next command.
// A READONLY refusal (the server was demoted to a replica in a failover) breaks it too, and is
// thrown as IoError, so the pool reconnects to the current master.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/redis/script.h"
#include "common/redis/url.h"

struct redisContext;

namespace mxguard::common::redis {

class Connection {
 public:
  enum class Health { kOk, kTimedOut, kLost };

  // url must name one server (kTcp or kUnix). Connects within options.connect_timeout, sets
  // options.command_timeout on the socket, then authenticates and selects url.db. Throws
  // IoError/TimeoutError, or ReplyError (bad password).
  Connection(const Url& url, const ClientOptions& options);
  ~Connection();
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;

  // Sends one command; every argument is sent as-is (may contain NUL bytes).
  Reply command(const std::vector<std::string>& argv);
  // Sends all commands, then reads all replies (one round trip). If a reply is an error, every
  // reply is still read (the connection stays usable) and the first error is thrown.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  // Like pipeline(), but with each command's outcome on its own: an error reply becomes that
  // entry's error (a ReplyError, or IoError for READONLY) and the others still succeed. Only
  // I/O trouble (timeout, lost connection) throws, for the whole pipeline.
  struct Outcome {
    std::optional<Reply> reply;
    std::exception_ptr error;
  };
  std::vector<Outcome> pipeline_outcomes(const std::vector<std::vector<std::string>>& commands);
  // EVALSHA; on NOSCRIPT, SCRIPT LOAD and retry once.
  Reply eval(const Script& script, const std::vector<std::string>& keys,
             const std::vector<std::string>& args);

  Health health() const { return health_; }
  bool broken() const { return health_ != Health::kOk; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  [[noreturn]] void fail(int saved_errno, const char* what);

  std::unique_ptr<redisContext, ContextDeleter> context_;
  Health health_ = Health::kOk;
};

}  // namespace mxguard::common::redis
