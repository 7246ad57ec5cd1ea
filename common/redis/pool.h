// The Redis client that daemons hold: a bounded, thread-safe pool of Connections (for
// libmilter's thread per connection and for multi-threaded Asio servers).
// Redis is either up, or down: after a failed connect (refused, unreachable, wrong password) or
// after --redis-breaker-threshold consecutive command timeouts (a stalled Redis: SIGSTOP, a long
// fork, a dropped network path — the breaker). While down, every call fails at once with IoError
// instead of waiting for a timeout, and a background thread probes (connect + PING) with
// exponential backoff; the pool is up again as soon as a probe answers. Down/up changes are
// logged once each, never per call. With a sentinel:// URL every new connection goes to the
// master the sentinels name (see sentinel.h), so a failover is followed within a backoff.
// Must never hand one Connection to two threads, nor put a broken one back.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/redis/connection.h"
#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/redis/script.h"
#include "common/redis/sentinel.h"
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
  ~Pool();  // stops the background probe (waits for at most one connect and PING)
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Throws IoError (Redis down or stalled: at once), TimeoutError (no free connection within
  // command_timeout, or the first connect timing out), or ReplyError (e.g. wrong password).
  Lease borrow();

  Reply command(const std::vector<std::string>& argv);
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  Reply eval(const Script& script, const std::vector<std::string>& keys,
             const std::vector<std::string>& args);

  // options().prefix + suffix: every key we write lives under the prefix.
  std::string key(std::string_view suffix) const { return options_.prefix + std::string(suffix); }
  const ClientOptions& options() const { return options_; }
  const Url& url() const { return url_; }
  bool up() const;  // false from a failed connect or a tripped breaker until a probe answers
  // With a sentinel:// URL, "host:port" of the master in use (else ""), and the failovers seen.
  std::string master() const;
  std::uint64_t failovers() const;

 private:
  std::unique_ptr<Connection> open_connection();
  void give_back(std::unique_ptr<Connection> connection);
  void go_down(const std::string& reason, bool breaker);  // mutex_ held
  void connect_succeeded();                               // mutex_ held
  void probe_loop();

  const ClientOptions options_;
  const Url url_;
  std::unique_ptr<Sentinel> sentinel_;  // sentinel:// URLs only
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  std::condition_variable probe_wake_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // idle + leased + being connected
  bool up_ = true;        // optimistic until the first connect fails, so start-up logs nothing
  bool stopping_ = false;
  // Started the first time Redis goes down, by this process: a daemon that detaches (fork)
  // after a pool went down has no such thread in the child, which starts its own.
  std::unique_ptr<std::thread> prober_;
  pid_t prober_pid_ = 0;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_;
  unsigned failed_probes_ = 0;
  std::size_t consecutive_timeouts_ = 0;
  std::string last_error_;
};

}  // namespace mxguard::common::redis
