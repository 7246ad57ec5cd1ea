// Implementation of Pool (see pool.h). Must never log per failed call: only the down/up
// transitions are logged; individual failures are counted by the error helpers.
#include "common/redis/pool.h"

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
  return o;
}

void count_connect(const char* result) {
  metrics::Registry::global()
      .counter("mxguard_redis_connects_total", "Redis connect attempts by result",
               {{"result", result}})
      .inc();
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
  set_up_gauge(url_, true);
}

Pool::~Pool() = default;

bool Pool::up() const {
  std::lock_guard lock(mutex_);
  return up_;
}

Pool::Lease Pool::borrow() {
  std::unique_lock lock(mutex_);
  const auto deadline = Clock::now() + options_.command_timeout;
  for (;;) {
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
    if (open_ < options_.pool_size) {
      bool probe = !up_;
      if (probe) {
        // Fail fast: one caller per backoff interval pays for a connect attempt, not all.
        auto now = Clock::now();
        if (probing_ || now < next_attempt_) {
          auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::max(next_attempt_ - now, Clock::duration::zero()));
          detail::throw_io("redis " + url_.redacted() + " is down (" + last_error_ +
                           "); next connect attempt in " + std::to_string(wait.count()) + "ms");
        }
        probing_ = true;
      }
      ++open_;
      lock.unlock();
      try {
        auto connection = std::make_unique<Connection>(url_, options_);
        count_connect("ok");
        lock.lock();
        connect_succeeded();
        return Lease(this, std::move(connection));
      } catch (const std::exception& e) {
        count_connect("error");
        lock.lock();
        --open_;
        connect_failed(probe, e);
        returned_.notify_one();
        throw;
      }
    }
    if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
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
    idle_.push_back(std::move(connection));
  } else {
    --open_;
    // A lost connection (not a mere timeout) usually means the server restarted or died; the
    // idle connections are from the same era, so drop them rather than fail one call on each.
    if (connection->health() == Connection::Health::kLost) {
      open_ -= idle_.size();
      idle_.clear();
    }
  }
  returned_.notify_one();
}

void Pool::connect_failed(bool was_probe, const std::exception& error) {
  last_error_ = error.what();
  ++failed_connects_;
  if (was_probe) {
    probing_ = false;
  }
  if (up_) {
    up_ = false;
    backoff_ = options_.reconnect_backoff_min;
    open_ -= idle_.size();
    idle_.clear();
    set_up_gauge(url_, false);
    log::warning("redis " + url_.redacted() + " is down: " + last_error_ +
                 "; failing fast and retrying with backoff from " +
                 std::to_string(options_.reconnect_backoff_min.count()) + "ms to " +
                 std::to_string(options_.reconnect_backoff_max.count()) + "ms");
  } else if (was_probe) {
    backoff_ = std::min(backoff_ * 2, options_.reconnect_backoff_max);
  } else {
    return;  // a connect begun while up; the first failure already scheduled the next attempt
  }
  next_attempt_ = Clock::now() + backoff_;
}

void Pool::connect_succeeded() {
  if (!up_) {
    log::info("redis " + url_.redacted() + " is up again after " +
              std::to_string(failed_connects_) + " failed connect attempts");
    set_up_gauge(url_, true);
  }
  up_ = true;
  probing_ = false;
  backoff_ = options_.reconnect_backoff_min;
  failed_connects_ = 0;
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
