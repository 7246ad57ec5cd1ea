// Shared rate limiter on Redis for mxguard-authpolicy (failed logins) and mxguard-policyd
// (outbound messages and recipients). Each subject (an IP, a network, a login, a SASL user…) is
// one Redis hash holding a sliding-window counter per window length (current and previous
// fixed window, weighted: the classic "sliding window counter", exact enough for abuse limits
// and O(1) in memory), plus an optional block-until time. One check-and-count over several
// subjects is one Lua script call, so many hosts sharing Redis count together.
// Time comes from the caller (milliseconds), so tests inject a clock; hosts must keep NTP.
// Must never block past the Redis timeout (errors are redis::IoError for the caller to map),
// and never write a key without a TTL.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/batcher.h"
#include "common/redis/pool.h"
#include "common/redis/script.h"

namespace mxguard::common::ratelimit {

// At most `max` events per `window`. Parsed from "10/1m", "100/1h", "5/30s".
struct Limit {
  std::uint64_t max = 0;
  std::chrono::milliseconds window{0};
  // Exceeding this limit by counting blocks the subject for Subject::block_for; a limit that
  // does not block is only reported (e.g. a tarpit threshold).
  bool blocks = true;

  // Throws std::invalid_argument naming the text.
  static Limit parse(std::string_view text);
  std::string to_string() const;  // "10/1m"
  friend bool operator==(const Limit&, const Limit&) = default;
};

// One counted subject: its key (without the prefix: Limiter adds it), its limits, and for how
// long the subject is blocked once a limit is exceeded by counting (0: never blocked).
struct Subject {
  std::string key;
  std::vector<Limit> limits;
  std::chrono::milliseconds block_for{0};
};

// What Redis holds for one subject after the call.
struct SubjectState {
  std::chrono::milliseconds blocked_for{0};  // remaining block time; 0 = not blocked
  std::vector<double> counts;                // sliding-window estimate per limit (same order)
  // Index of the first limit the estimate exceeds (count > max), if any.
  std::optional<std::size_t> exceeded;
  // Index of the first limit whose estimate has reached its max (count >= max): the next
  // event would exceed it.
  std::optional<std::size_t> reached;
  // True when this call started the block.
  bool newly_blocked = false;
};

enum class Mode {
  kPeek,     // read only
  kCount,    // count `cost` on every subject, whatever the limits say
  kConsume,  // count only if no subject would exceed a limit (all or nothing), else nothing
  // Count the first subject; count the others only if the first one had no events in its first
  // limit's window yet. authpolicy's (login, password hash) pair: the same wrong password
  // retried is one failure for the address and login counters, not many.
  kCountNew,
};

struct Result {
  std::vector<SubjectState> subjects;
  bool counted = false;  // kConsume: false when a limit would have been exceeded
  bool repeat = false;   // kCountNew: the first subject had been seen, the others not counted
  bool blocked() const;  // any subject blocked
};

// Milliseconds since the epoch; injected so tests control time.
using Clock = std::function<std::int64_t()>;
std::int64_t system_clock_ms();

// A key-safe form of an identifier from the network (login names, domains): kept as is when
// short and made of [A-Za-z0-9@._+-], else "h:" + SHA-1 hex, so no key holds control
// characters, braces (hash tags) or unbounded lengths.
std::string key_part(std::string_view id);

// One check-and-count for hit_batch().
struct Hit {
  std::vector<Subject> subjects;
  Mode mode = Mode::kCount;
  std::uint64_t cost = 1;
};

class Limiter {
 public:
  // Keys are prefix + "rl:{" + subject key + "}".
  Limiter(redis::Pool& redis, Clock clock = system_clock_ms);

  // One script call (kPeek: one pipelined read, no script). Throws redis::Error (IoError when
  // Redis is unavailable).
  Result hit(const std::vector<Subject>& subjects, Mode mode, std::uint64_t cost = 1);
  // Several script calls (no kPeek) in one pipelined round trip, on one connection; results in
  // the same order. Throws redis::Error for the whole batch.
  std::vector<Result> hit_batch(const std::vector<Hit>& hits);
  // hit() without waiting: the script call goes out through `batcher` (pipelined with other
  // callers'), and `done` runs exactly once with the result or with the error (a redis::Error,
  // or std::runtime_error for a reply that is not the script's): on a batcher thread, or inside
  // this call when the batcher refuses the call at once (queue full, shutting down: IoError). No
  // kPeek and no empty `subjects` (std::invalid_argument, thrown here: programming errors, not
  // outcomes).
  using HitCallback = std::function<void(std::optional<Result>, std::exception_ptr)>;
  void hit_async(redis::Batcher& batcher, std::vector<Subject> subjects, Mode mode,
                 std::uint64_t cost, HitCallback done);
  // hit(subjects, kPeek) without waiting: one HMGET per subject through `batcher`, the same
  // arithmetic as the synchronous peek, `done` as for hit_async (exactly once; an error if any
  // HMGET failed). No empty `subjects` (std::invalid_argument, thrown here).
  void peek_async(redis::Batcher& batcher, std::vector<Subject> subjects, HitCallback done);
  // Forgets a subject's counters and block.
  void reset(std::string_view subject_key);
  // Forgets a subject's counters but keeps a block in force (one script call).
  void reset_counts(std::string_view subject_key);
  // Blocks a subject for `duration` (administrative ban); keeps its counters.
  void block(std::string_view subject_key, std::chrono::milliseconds duration);
  // Lifts a block; keeps the counters.
  void unblock(std::string_view subject_key);
  // Every blocked subject whose key starts with `key_prefix`: (subject key, remaining).
  std::vector<std::pair<std::string, std::chrono::milliseconds>> blocked(
      std::string_view key_prefix = {});

  std::string redis_key(std::string_view subject_key) const;
  const Clock& clock() const { return clock_; }

 private:
  Result peek(const std::vector<Subject>& subjects);
  std::vector<std::vector<std::string>> peek_commands(const std::vector<Subject>& subjects) const;
  void script_call(const Hit& hit, std::int64_t now, std::vector<std::string>& keys,
                   std::vector<std::string>& args) const;

  redis::Pool& redis_;
  Clock clock_;
};

const redis::Script& ratelimit_script();

}  // namespace mxguard::common::ratelimit
