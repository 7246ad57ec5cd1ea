// Sends concurrent callers' Redis commands as pipelines on a few shared connections, so a
// server thread never waits on Redis: a caller queues a command with a callback and goes on;
// a writer thread takes everything queued (up to max_batch), borrows one connection from the
// Pool, writes it all, reads all replies, and calls each callback. Under load, batches grow by
// themselves (32 concurrent requests become one round trip, not 32), and throughput follows
// Redis instead of the number of server threads. Everything the Pool does still holds: fail
// fast while Redis is down or the breaker is open, Sentinel, timeouts, one log line per change.
// Must never call a callback twice or never; must never let one caller's error reply fail
// another's command; the queue is bounded, and a full queue fails at once (IoError).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/pool.h"
#include "common/redis/reply.h"
#include "common/redis/script.h"

namespace mxguard::common::redis {

class Batcher {
 public:
  // Exactly one of reply and error is set. error holds an redis::Error (IoError when Redis is
  // unavailable, ReplyError for this command's error reply).
  struct Result {
    std::optional<Reply> reply;
    std::exception_ptr error;
  };
  // Runs on a writer thread: keep it short (post real work elsewhere); it must not throw.
  using Callback = std::function<void(Result)>;

  struct Options {
    std::size_t writers = 2;         // threads, each with at most one connection in use
    std::size_t max_batch = 128;     // commands per pipeline
    std::size_t max_queued = 10000;  // beyond this, calls fail at once
  };

  Batcher(Pool& pool, Options options);
  explicit Batcher(Pool& pool) : Batcher(pool, Options{}) {}
  // Fails every queued call (IoError "shutting down"), waits for the batches in flight.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  void command(std::vector<std::string> argv, Callback done);
  // EVALSHA; a NOSCRIPT reply loads the script and retries that command once.
  void eval(const Script& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, Callback done);

 private:
  struct Call {
    std::vector<std::string> argv;
    const Script* script = nullptr;  // set for EVALSHA
    Callback done;
  };
  void enqueue(Call call);
  void run();
  void send(std::vector<Call>& batch);

  Pool& pool_;
  const Options options_;
  std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<Call> queue_;
  bool stopping_ = false;
  std::vector<std::thread> writers_;
};

}  // namespace mxguard::common::redis
