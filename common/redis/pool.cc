// Implementation of Pool (see pool.h). Must never log per failed call: only the down/up
// transitions are logged; individual failures are counted by the error helpers.
#include "common/redis/pool.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"

namespace mxguard::common::redis {
namespace {

using Clock = std::chrono::steady_clock;

const ClientOptions& validated(const ClientOptions& o) {
  if (o.pool_size == 0) {
    throw std::invalid_argument("redis pool size must be at least 1");
  }
  if (o.connect_timeout.count() <= 0 || o.command_timeout.count() <= 0) {
    throw std::invalid_argument("redis timeouts must be positive (never infinite)");
  }
  if (o.reconnect_backoff_min.count() <= 0 || o.reconnect_backoff_max < o.reconnect_backoff_min) {
    throw std::invalid_argument("redis reconnect backoff needs 0 < min <= max");
  }
  if (o.breaker_threshold == 0) {
    throw std::invalid_argument("redis breaker threshold must be at least 1");
  }
  return o;
}

void count_connect(const char* result) {
  metrics::Registry::global()
      .counter("mxguard_redis_connects_total", "Redis connect attempts by result",
               {{"result", result}})
      .inc();
}

metrics::Counter& breaker_trips() {
  return metrics::Registry::global().counter(
      "mxguard_redis_breaker_trips_total",
      "times consecutive Redis command timeouts made the client fail fast (a stalled Redis)");
}

void set_up_gauge(const Url& url, bool up) {
  metrics::Registry::global()
      .gauge("mxguard_redis_up", "1 while the Redis server is reachable", {{"url", url.redacted()}})
      .set(up ? 1 : 0);
}

}  // namespace

Pool::Lease::Lease(Pool* pool, std::unique_ptr<Connection> connection)
    : pool_(pool), connection_(std::move(connection)) {}

Pool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)) {}

Pool::Lease::~Lease() {
  if (connection_) {
    pool_->give_back(std::move(connection_));
  }
}

Pool::Pool(const ClientOptions& options)
    : options_(validated(options)),
      url_(Url::parse(options_.url)),
      backoff_(options_.reconnect_backoff_min) {
  if (url_.transport == Url::Transport::kSentinel) {
    sentinel_ = std::make_unique<Sentinel>(url_, options_);
  }
  if (options_.report_state) {
    set_up_gauge(url_, true);
    breaker_trips().inc(0);
  }
}

Pool::~Pool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  probe_wake_.notify_all();
  if (prober_ && prober_pid_ == ::getpid()) {
    prober_->join();
  } else {
    (void)prober_.release();  // a thread of the parent process, not ours to join
  }
}

bool Pool::up() const {
  std::lock_guard lock(mutex_);
  return up_;
}

std::string Pool::master() const { return sentinel_ ? sentinel_->master() : ""; }

std::uint64_t Pool::failovers() const { return sentinel_ ? sentinel_->failovers() : 0; }

std::unique_ptr<Connection> Pool::open_connection() {
  if (sentinel_) {
    return sentinel_->connect_master();
  }
  return std::make_unique<Connection>(url_, options_);
}

Pool::Lease Pool::borrow() {
  std::unique_lock lock(mutex_);
  const auto deadline = Clock::now() + options_.command_timeout;
  for (;;) {
    if (!up_) {
      // Fail fast: the background probe alone pays for connect attempts while Redis is down.
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(next_attempt_ - Clock::now(), Clock::duration::zero()));
      detail::throw_io("redis " + url_.redacted() + " is down (" + last_error_ +
                       "); next probe in " + std::to_string(wait.count()) + "ms");
    }
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
    if (open_ < options_.pool_size) {
      ++open_;
      lock.unlock();
      try {
        auto connection = open_connection();
        if (options_.report_state) count_connect("ok");
        lock.lock();
        connect_succeeded();
        return Lease(this, std::move(connection));
      } catch (const std::exception& e) {
        if (options_.report_state) count_connect("error");
        lock.lock();
        --open_;
        go_down(e.what(), false);
        returned_.notify_one();
        throw;
      }
    }
    if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && up_ && idle_.empty() &&
        open_ >= options_.pool_size) {
      detail::throw_timeout("no free redis connection within " +
                            std::to_string(options_.command_timeout.count()) + "ms (pool size " +
                            std::to_string(options_.pool_size) + ")");
    }
  }
}

void Pool::give_back(std::unique_ptr<Connection> connection) {
  std::lock_guard lock(mutex_);
  if (!connection->broken()) {
    consecutive_timeouts_ = 0;
    if (up_) {
      idle_.push_back(std::move(connection));
    } else {
      --open_;  // from before the outage; the probe decides when Redis is back
    }
  } else {
    --open_;
    if (connection->health() == Connection::Health::kLost) {
      // A lost connection (not a mere timeout) usually means the server restarted, died or was
      // demoted; the idle connections are from the same era, so drop them rather than fail one
      // call on each.
      open_ -= idle_.size();
      idle_.clear();
    } else if (++consecutive_timeouts_ >= options_.breaker_threshold && up_) {
      // One slow command is not an outage; several in a row with no success between are a
      // stalled server, where every caller would otherwise wait its full timeout.
      if (options_.report_state) breaker_trips().inc();
      go_down(std::to_string(consecutive_timeouts_) + " consecutive command timeouts of " +
                  std::to_string(options_.command_timeout.count()) + "ms",
              true);
    }
  }
  returned_.notify_all();
}

void Pool::go_down(const std::string& reason, bool breaker) {
  last_error_ = reason;
  if (!up_) {
    return;  // already down; the probe keeps its own schedule
  }
  up_ = false;
  backoff_ = options_.reconnect_backoff_min;
  failed_probes_ = 0;
  next_attempt_ = Clock::now() + backoff_;
  open_ -= idle_.size();
  idle_.clear();
  if (options_.report_state) {
    set_up_gauge(url_, false);
    log::warning("redis " + url_.redacted() + (breaker ? " is not answering: " : " is down: ") +
                 reason + "; failing fast and probing in the background with backoff from " +
                 std::to_string(options_.reconnect_backoff_min.count()) + "ms to " +
                 std::to_string(options_.reconnect_backoff_max.count()) + "ms");
  }
  if (prober_ && prober_pid_ == ::getpid()) {
    probe_wake_.notify_all();
  } else {
    (void)prober_.release();  // from before a fork: that thread does not exist here
    prober_ = std::make_unique<std::thread>([this] { probe_loop(); });
    prober_pid_ = ::getpid();
  }
}

void Pool::connect_succeeded() {
  if (!up_ && options_.report_state) {
    log::info("redis " + url_.redacted() + " is up again after " + std::to_string(failed_probes_) +
              " failed probes");
    set_up_gauge(url_, true);
  }
  up_ = true;
  backoff_ = options_.reconnect_backoff_min;
  failed_probes_ = 0;
}

void Pool::probe_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (up_) {
      probe_wake_.wait(lock, [this] { return stopping_ || !up_; });
      continue;
    }
    if (probe_wake_.wait_until(lock, next_attempt_, [this] { return stopping_ || up_; })) {
      continue;
    }
    lock.unlock();
    std::unique_ptr<Connection> connection;
    std::string error;
    try {
      connection = open_connection();
      // A stalled server accepts connects (the kernel does) but answers nothing.
      connection->command({"PING"});
      if (options_.report_state) count_connect("ok");
    } catch (const std::exception& e) {
      if (options_.report_state) count_connect("error");
      connection.reset();
      error = e.what();
    }
    lock.lock();
    if (connection) {
      if (open_ < options_.pool_size) {
        ++open_;
        idle_.push_back(std::move(connection));
      }
      consecutive_timeouts_ = 0;  // it answered PING (a mere connect proves nothing)
      connect_succeeded();
      returned_.notify_all();
    } else {
      last_error_ = error;
      ++failed_probes_;
      backoff_ = std::min(backoff_ * 2, options_.reconnect_backoff_max);
      next_attempt_ = Clock::now() + backoff_;
    }
  }
}

Reply Pool::command(const std::vector<std::string>& argv) { return borrow()->command(argv); }

std::vector<Reply> Pool::pipeline(const std::vector<std::vector<std::string>>& commands) {
  return borrow()->pipeline(commands);
}

Reply Pool::eval(const Script& script, const std::vector<std::string>& keys,
                 const std::vector<std::string>& args) {
  return borrow()->eval(script, keys, args);
}

}  // namespace mxguard::common::redis
