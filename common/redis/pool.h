// The Redis client that daemons hold: a bounded, thread-safe pool of Connections (for
// libmilter's thread per connection and for multi-threaded Asio servers) that reconnects with
// exponential backoff. While Redis is down, callers fail fast with IoError instead of each
// waiting for a connect timeout; the first call after the backoff interval probes, and the pool
// is back as soon as a probe succeeds. Down/up changes are logged once each, never per call.
// Must never hand one Connection to two threads, nor put a broken one back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/connection.h"
#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/redis/script.h"
#include "common/redis/url.h"

namespace mxguard::common::redis {

class Pool {
 public:
  // A borrowed connection, returned to the pool (or dropped if broken) on destruction. The pool
  // must outlive its leases.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    Connection& operator*() const { return *connection_; }
    Connection* operator->() const { return connection_.get(); }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> connection);
    Pool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  // Parses options.url (std::invalid_argument when invalid); does not connect yet, so a daemon
  // starts even while Redis is down.
  explicit Pool(const ClientOptions& options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Throws IoError (Redis down, in backoff), TimeoutError (no free connection within
  // command_timeout, or connect timeout), or ReplyError (e.g. wrong password on connect).
  Lease borrow();

  Reply command(const std::vector<std::string>& argv);
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  Reply eval(const Script& script, const std::vector<std::string>& keys,
             const std::vector<std::string>& args);

  // options().prefix + suffix: every key we write lives under the prefix.
  std::string key(std::string_view suffix) const { return options_.prefix + std::string(suffix); }
  const ClientOptions& options() const { return options_; }
  const Url& url() const { return url_; }
  bool up() const;  // false between a failed connect and the next successful one

 private:
  void give_back(std::unique_ptr<Connection> connection);
  void connect_failed(bool was_probe, const std::exception& error);
  void connect_succeeded();

  const ClientOptions options_;
  const Url url_;
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // idle + leased + being connected
  bool up_ = true;        // optimistic until the first connect fails, so start-up logs nothing
  bool probing_ = false;  // a connect attempt is running while down
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_;
  unsigned failed_connects_ = 0;
  std::string last_error_;
};

}  // namespace mxguard::common::redis
