// Integration tests for common/redis/batcher.cc against a private redis-server: concurrent
// callers' commands go out as pipelines and each gets its own exact answer; one caller's error
// reply fails only that caller; scripts reload after SCRIPT FLUSH; Redis down or stalled fails
// every call at once (never a hang, never a lost callback); shutdown and a full queue answer too.
#include "common/redis/batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::common::redis {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::RedisServer;

ClientOptions options_for(const std::string& url) {
  ClientOptions o;
  o.url = url;
  o.connect_timeout = milliseconds(300);
  o.command_timeout = milliseconds(300);
  o.pool_size = 4;
  o.reconnect_backoff_min = milliseconds(100);
  o.reconnect_backoff_max = milliseconds(400);
  return o;
}

// Calls fn(batcher, done) and waits for the callback's result.
Batcher::Result call(Batcher& batcher, std::vector<std::string> argv) {
  std::promise<Batcher::Result> promise;
  auto future = promise.get_future();
  batcher.command(std::move(argv), [&](Batcher::Result r) { promise.set_value(std::move(r)); });
  return future.get();
}

template <typename E>
bool holds(const Batcher::Result& r) {
  if (!r.error) return false;
  try {
    std::rethrow_exception(r.error);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

TEST(BatcherTest, ConcurrentCallsArePipelinedAndExact) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  Batcher batcher(pool, Batcher::Options{.writers = 2});
  auto& sizes = metrics::Registry::global().histogram(
      "mxguard_redis_batch_commands", "Commands sent to Redis in one pipelined batch",
      {1, 2, 4, 8, 16, 32, 64, 128});
  auto batches_before = sizes.count();
  auto commands_before = sizes.sum();

  constexpr int kCallers = 32;
  constexpr int kEach = 300;
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      // Each caller keeps one call in flight, like a policy connection waiting for its reply.
      for (int i = 0; i < kEach; ++i) {
        auto r = call(batcher, {"INCR", "counter:" + std::to_string(c % 4)});
        if (r.reply) {
          ++answered;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(answered.load(), kCallers * kEach);
  EXPECT_EQ(failed.load(), 0);
  long long total = 0;
  for (int k = 0; k < 4; ++k) {
    total += std::stoll(pool.command({"GET", "counter:" + std::to_string(k)}).as_string());
  }
  EXPECT_EQ(total, kCallers * kEach);
  double batches = static_cast<double>(sizes.count() - batches_before);
  double commands = sizes.sum() - commands_before;
  EXPECT_EQ(commands, kCallers * kEach);
  // With 32 callers and 2 writers, batches must carry several commands, not one each.
  EXPECT_GT(commands / batches, 2.0) << batches << " batches";
}

TEST(BatcherTest, AnErrorReplyFailsOnlyItsOwnCall) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  pool.command({"SET", "text", "abc"});
  Batcher batcher(pool, Batcher::Options{.writers = 1});
  std::vector<std::future<Batcher::Result>> results;
  std::vector<std::promise<Batcher::Result>> promises(3);
  for (auto& p : promises) results.push_back(p.get_future());
  // Queued together, so they share one pipeline.
  batcher.command({"INCR", "n"}, [&](Batcher::Result r) { promises[0].set_value(std::move(r)); });
  batcher.command({"INCR", "text"},
                  [&](Batcher::Result r) { promises[1].set_value(std::move(r)); });
  batcher.command({"INCR", "n"}, [&](Batcher::Result r) { promises[2].set_value(std::move(r)); });
  auto first = results[0].get();
  auto bad = results[1].get();
  auto last = results[2].get();
  EXPECT_EQ(first.reply->as_integer(), 1);
  EXPECT_TRUE(holds<ReplyError>(bad));
  EXPECT_EQ(last.reply->as_integer(), 2);
  EXPECT_EQ(call(batcher, {"PING"}).reply->as_string(), "PONG");  // the connection is fine
}

TEST(BatcherTest, ScriptsReloadAfterFlush) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  Batcher batcher(pool);
  static const Script script("incr_by", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto eval = [&](const std::string& by) {
    std::promise<Batcher::Result> promise;
    auto future = promise.get_future();
    batcher.eval(script, {"k"}, {by}, [&](Batcher::Result r) { promise.set_value(std::move(r)); });
    return future.get();
  };
  EXPECT_EQ(eval("2").reply->as_integer(), 2);
  pool.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(eval("3").reply->as_integer(), 5);
}

TEST(BatcherTest, DownOrStalledRedisFailsEveryCallAtOnce) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  Batcher batcher(pool);
  EXPECT_TRUE(call(batcher, {"PING"}).reply);

  server.pause();
  auto start = Clock::now();
  int timeouts = 0;
  for (int i = 0; i < 30; ++i) {
    auto r = call(batcher, {"PING"});
    EXPECT_FALSE(r.reply);
    EXPECT_TRUE(holds<IoError>(r));
    if (holds<TimeoutError>(r)) ++timeouts;
  }
  EXPECT_LE(timeouts, 3);  // then the breaker answers
  EXPECT_LT(Clock::now() - start, milliseconds(3 * 300 + 400));
  server.resume();

  server.kill();
  start = Clock::now();
  for (int i = 0; i < 30; ++i) {
    EXPECT_TRUE(holds<IoError>(call(batcher, {"PING"})));
  }
  EXPECT_LT(Clock::now() - start, milliseconds(500));
}

TEST(BatcherTest, ShutdownAndAFullQueueStillAnswerEveryCall) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  {
    Batcher batcher(pool, Batcher::Options{.writers = 1, .max_batch = 1, .max_queued = 5});
    // DEBUG SLEEP holds the one writer, so the rest queue up: five fit, the others fail.
    for (int i = 0; i < 20; ++i) {
      std::vector<std::string> argv = i == 0 ? std::vector<std::string>{"DEBUG", "SLEEP", "0.2"}
                                             : std::vector<std::string>{"PING"};
      batcher.command(argv, [&](Batcher::Result r) { ++(r.reply ? answered : failed); });
    }
  }  // the destructor fails what is still queued
  EXPECT_EQ(answered.load() + failed.load(), 20);
  EXPECT_GE(failed.load(), 14);
}

}  // namespace
}  // namespace mxguard::common::redis
