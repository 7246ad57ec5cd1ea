// Implementation of Batcher (see batcher.h). Must never hold mutex_ while talking to Redis or
// calling a callback.
#include "common/redis/batcher.h"

#include <stdexcept>
#include <string_view>
#include <utility>

#include "common/metrics/metrics.h"
#include "common/redis/errors.h"

namespace mxguard::common::redis {
namespace {

metrics::Histogram& batch_sizes() {
  static auto& h = metrics::Registry::global().histogram(
      "mxguard_redis_batch_commands", "Commands sent to Redis in one pipelined batch",
      {1, 2, 4, 8, 16, 32, 64, 128});
  return h;
}

// Builds the exception for callers without counting it twice: the Pool or Connection already
// counted the original; these are for trouble found here.
std::exception_ptr io_error(const std::string& message) {
  try {
    detail::throw_io(message);
  } catch (...) {
    return std::current_exception();
  }
}

bool is_noscript(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ReplyError& e) {
    return std::string_view(e.what()).rfind("NOSCRIPT", 0) == 0;
  } catch (...) {
    return false;
  }
}

}  // namespace

Batcher::Batcher(Pool& pool, Options options) : pool_(pool), options_(options) {
  if (options_.writers == 0 || options_.max_batch == 0 || options_.max_queued == 0) {
    throw std::invalid_argument("redis batcher needs at least one writer, batch and queue slot");
  }
  for (std::size_t i = 0; i < options_.writers; ++i) {
    writers_.emplace_back([this] { run(); });
  }
}

Batcher::~Batcher() {
  std::deque<Call> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  queued_.notify_all();
  for (auto& writer : writers_) {
    writer.join();
  }
  for (auto& call : left) {
    call.done(Result{std::nullopt, io_error("redis client shutting down")});
  }
}

void Batcher::command(std::vector<std::string> argv, Callback done) {
  if (argv.empty()) {
    throw std::invalid_argument("redis command without arguments");
  }
  enqueue(Call{std::move(argv), nullptr, std::move(done)});
}

void Batcher::eval(const Script& script, const std::vector<std::string>& keys,
                   const std::vector<std::string>& args, Callback done) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  enqueue(Call{std::move(argv), &script, std::move(done)});
}

void Batcher::enqueue(Call call) {
  std::unique_lock lock(mutex_);
  if (stopping_ || queue_.size() >= options_.max_queued) {
    bool stopping = stopping_;
    lock.unlock();
    call.done(Result{std::nullopt,
                     io_error(stopping ? "redis client shutting down"
                                       : "redis request queue full (" +
                                             std::to_string(options_.max_queued) + " waiting)")});
    return;
  }
  queue_.push_back(std::move(call));
  lock.unlock();
  queued_.notify_one();
}

void Batcher::run() {
  std::vector<Call> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        return;  // the destructor fails what is left
      }
      std::size_t n = std::min(queue_.size(), options_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    send(batch);
    batch.clear();
  }
}

void Batcher::send(std::vector<Call>& batch) {
  batch_sizes().observe(static_cast<double>(batch.size()));
  std::vector<std::vector<std::string>> commands;
  commands.reserve(batch.size());
  for (auto& call : batch) {
    commands.push_back(std::move(call.argv));
  }
  std::vector<Result> results(batch.size());
  try {
    auto lease = pool_.borrow();
    auto outcomes = lease->pipeline_outcomes(commands);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      results[i] = Result{std::move(outcomes[i].reply), outcomes[i].error};
      // Not cached on this server (restart, failover, SCRIPT FLUSH): load it, retry once.
      if (batch[i].script != nullptr && results[i].error && is_noscript(results[i].error)) {
        try {
          lease->command({"SCRIPT", "LOAD", batch[i].script->source()});
          results[i] = Result{lease->command(commands[i]), nullptr};
        } catch (const Error&) {
          results[i] = Result{std::nullopt, std::current_exception()};
          if (lease->broken()) {
            throw;
          }
        }
      }
    }
  } catch (const Error&) {
    // Redis unavailable (down, breaker open, timeout, lost): every call of the batch fails.
    auto error = std::current_exception();
    for (auto& result : results) {
      if (!result.reply) {
        result = Result{std::nullopt, error};
      }
    }
  } catch (const std::exception& e) {
    auto error = io_error(std::string("redis batch failed: ") + e.what());
    for (auto& result : results) {
      if (!result.reply) {
        result = Result{std::nullopt, error};
      }
    }
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i].done(std::move(results[i]));
  }
}

}  // namespace mxguard::common::redis
