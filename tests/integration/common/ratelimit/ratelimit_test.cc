// Integration tests for common/ratelimit/ratelimit.cc on a private redis-server: sliding
// windows with an injected clock, several limits per subject, all-or-nothing consumption,
// blocks and their TTLs, and two processes counting against one Redis.
#include "common/ratelimit/ratelimit.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "common/redis/errors.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::common::ratelimit {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

class RateLimitTest : public ::testing::Test {
 protected:
  RateLimitTest() {
    options_.url = redis_.url();
    options_.command_timeout = 2000ms;
    pool_ = std::make_unique<redis::Pool>(options_);
  }
  Limiter limiter() {
    return Limiter(*pool_, [this] { return now_.load(); });
  }
  Subject subject(std::string key, std::vector<Limit> limits,
                  std::chrono::milliseconds block = {}) {
    return Subject{std::move(key), std::move(limits), block};
  }

  RedisServer redis_;
  redis::ClientOptions options_;
  std::unique_ptr<redis::Pool> pool_;
  std::atomic<std::int64_t> now_{1'699'999'200'000};  // a window boundary for 1m and 1h
};

TEST_F(RateLimitTest, CountsUpToTheLimit) {
  auto l = limiter();
  std::vector<Subject> s{subject("t:a", {{3, 60s}})};
  for (int i = 1; i <= 3; ++i) {
    auto r = l.hit(s, Mode::kCount);
    EXPECT_TRUE(r.counted);
    EXPECT_DOUBLE_EQ(r.subjects[0].counts[0], i);
    EXPECT_FALSE(r.subjects[0].exceeded) << i;
  }
  auto r = l.hit(s, Mode::kCount);
  ASSERT_TRUE(r.subjects[0].exceeded);
  EXPECT_EQ(*r.subjects[0].exceeded, 0u);
  auto peek = l.hit(s, Mode::kPeek);
  EXPECT_DOUBLE_EQ(peek.subjects[0].counts[0], 4);
  EXPECT_TRUE(peek.subjects[0].reached);
}

TEST_F(RateLimitTest, PeekWritesNothing) {
  auto l = limiter();
  auto r = l.hit({subject("t:peek", {{3, 60s}})}, Mode::kPeek);
  EXPECT_FALSE(r.counted);
  EXPECT_DOUBLE_EQ(r.subjects[0].counts[0], 0);
  EXPECT_EQ(pool_->command({"EXISTS", l.redis_key("t:peek")}).as_integer(), 0);
}

TEST_F(RateLimitTest, WindowSlides) {
  auto l = limiter();
  std::vector<Subject> s{subject("t:slide", {{10, 60s}})};
  for (int i = 0; i < 10; ++i) l.hit(s, Mode::kCount);
  now_ += 60'000 + 15'000;  // a quarter into the next window: 3/4 of the previous counts
  auto r = l.hit(s, Mode::kPeek);
  EXPECT_NEAR(r.subjects[0].counts[0], 7.5, 0.01);
  now_ += 45'000;  // the start of the window after: only the last full window counts
  r = l.hit(s, Mode::kPeek);
  EXPECT_NEAR(r.subjects[0].counts[0], 0, 0.01);
  now_ += 120'000;
  r = l.hit(s, Mode::kPeek);
  EXPECT_NEAR(r.subjects[0].counts[0], 0, 0.01);
}

// Hosts sharing Redis never have exactly the same clock. One a second behind, still in the
// previous window by its own clock, must count into the window the other host opened, not
// overwrite it with an empty one of its own (in the script and in the script-less peek).
TEST_F(RateLimitTest, AHostWithASlowClockDoesNotWipeAnothersCounts) {
  std::atomic<std::int64_t> ahead{now_.load() + 1000}, behind{now_.load() - 1000};
  Limiter a(*pool_, [&] { return ahead.load(); });
  Limiter b(*pool_, [&] { return behind.load(); });
  std::vector<Subject> s{subject("t:skew", {{100, 60s}})};
  for (int i = 0; i < 5; ++i) a.hit(s, Mode::kCount);
  EXPECT_DOUBLE_EQ(b.hit(s, Mode::kPeek).subjects[0].counts[0], 5);
  EXPECT_DOUBLE_EQ(b.hit(s, Mode::kCount).subjects[0].counts[0], 6);
  EXPECT_DOUBLE_EQ(a.hit(s, Mode::kPeek).subjects[0].counts[0], 6);
  EXPECT_DOUBLE_EQ(a.hit(s, Mode::kCount).subjects[0].counts[0], 7);
}

TEST_F(RateLimitTest, SeveralLimitsPerSubject) {
  auto l = limiter();
  std::vector<Subject> s{subject("t:multi", {{10, 60s}, {15, 3600s}})};
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(l.hit(s, Mode::kConsume).counted);
  EXPECT_FALSE(l.hit(s, Mode::kConsume).counted);  // 10/1m reached
  now_ += 120'000;                                 // the minute window is empty again
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.hit(s, Mode::kConsume).counted) << i;
  auto r = l.hit(s, Mode::kConsume);  // 15/1h reached
  EXPECT_FALSE(r.counted);
  EXPECT_FALSE(r.subjects[0].reached.value_or(9) == 0);
  EXPECT_EQ(r.subjects[0].reached, 1u);
}

TEST_F(RateLimitTest, ConsumeIsAllOrNothing) {
  auto l = limiter();
  auto small = subject("t:small", {{1, 60s}});
  auto big = subject("t:big", {{100, 60s}});
  EXPECT_TRUE(l.hit({small, big}, Mode::kConsume).counted);
  auto r = l.hit({small, big}, Mode::kConsume);
  EXPECT_FALSE(r.counted);
  EXPECT_DOUBLE_EQ(r.subjects[1].counts[0], 1);  // big was not counted a second time
}

TEST_F(RateLimitTest, CostCountsSeveralAtOnce) {
  auto l = limiter();
  auto s = subject("t:cost", {{10, 60s}});
  EXPECT_TRUE(l.hit({s}, Mode::kConsume, 7).counted);
  EXPECT_FALSE(l.hit({s}, Mode::kConsume, 4).counted);
  EXPECT_TRUE(l.hit({s}, Mode::kConsume, 3).counted);
}

TEST_F(RateLimitTest, BlocksWhenExceededAndExpires) {
  auto l = limiter();
  auto s = subject("t:ban", {{2, 60s}}, 600s);
  EXPECT_FALSE(l.hit({s}, Mode::kCount).blocked());
  EXPECT_FALSE(l.hit({s}, Mode::kCount).blocked());
  auto r = l.hit({s}, Mode::kCount);
  EXPECT_TRUE(r.subjects[0].newly_blocked);
  EXPECT_EQ(r.subjects[0].blocked_for, 600s);
  long long ttl = pool_->command({"PTTL", l.redis_key("t:ban")}).as_integer();
  EXPECT_GT(ttl, 590'000);  // the key lives as long as the block
  now_ += 100'000;
  r = l.hit({s}, Mode::kPeek);
  EXPECT_EQ(r.subjects[0].blocked_for, 500s);
  EXPECT_FALSE(r.subjects[0].newly_blocked);
  auto list = l.blocked("t:");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].first, "t:ban");
  now_ += 500'001;
  EXPECT_FALSE(l.hit({s}, Mode::kPeek).blocked());
  EXPECT_TRUE(l.blocked("t:").empty());
}

TEST_F(RateLimitTest, ReportOnlyLimitsDoNotBlock) {
  auto l = limiter();
  auto s = subject("t:tarpit", {{1, 60s, false}, {5, 60s, true}}, 600s);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(l.hit({s}, Mode::kCount).blocked()) << i;
  auto r = l.hit({s}, Mode::kCount);
  EXPECT_TRUE(r.subjects[0].newly_blocked);
  EXPECT_EQ(r.subjects[0].exceeded, 0u);  // the first exceeded limit is still reported
}

TEST_F(RateLimitTest, CountNewCountsARepeatOnlyOnTheFirstSubject) {
  auto l = limiter();
  auto pair = subject("t:pair:x", {{50, 3600s}});
  auto ip = subject("t:ip", {{50, 3600s}});
  auto r = l.hit({pair, ip}, Mode::kCountNew);
  EXPECT_FALSE(r.repeat);
  r = l.hit({pair, ip}, Mode::kCountNew);
  EXPECT_TRUE(r.repeat);
  EXPECT_DOUBLE_EQ(r.subjects[0].counts[0], 2);
  EXPECT_DOUBLE_EQ(r.subjects[1].counts[0], 1);
  auto other = subject("t:pair:y", {{50, 3600s}});
  r = l.hit({other, ip}, Mode::kCountNew);
  EXPECT_FALSE(r.repeat);
  EXPECT_DOUBLE_EQ(r.subjects[1].counts[0], 2);
}

TEST_F(RateLimitTest, ResetCountsKeepsTheBlock) {
  auto l = limiter();
  auto s = subject("t:rc", {{1, 60s}}, 600s);
  l.hit({s}, Mode::kCount);
  l.hit({s}, Mode::kCount);
  l.reset_counts("t:rc");
  auto r = l.hit({s}, Mode::kPeek);
  EXPECT_TRUE(r.blocked());
  EXPECT_DOUBLE_EQ(r.subjects[0].counts[0], 0);
  auto free = subject("t:rc2", {{5, 60s}}, 600s);
  l.hit({free}, Mode::kCount);
  l.reset_counts("t:rc2");
  EXPECT_EQ(pool_->command({"EXISTS", l.redis_key("t:rc2")}).as_integer(), 0);
}

TEST_F(RateLimitTest, EveryKeyHasATtl) {
  auto l = limiter();
  l.hit({subject("t:ttl", {{5, 60s}, {50, 3600s}})}, Mode::kCount);
  long long ttl = pool_->command({"PTTL", l.redis_key("t:ttl")}).as_integer();
  EXPECT_GT(ttl, 7'000'000);
  EXPECT_LE(ttl, 7'200'000);
}

TEST_F(RateLimitTest, AdminBlockUnblockReset) {
  auto l = limiter();
  auto s = subject("t:admin", {{5, 60s}});
  l.block("t:admin", 3600s);
  EXPECT_TRUE(l.hit({s}, Mode::kPeek).blocked());
  EXPECT_FALSE(l.hit({s}, Mode::kConsume).counted);  // a blocked subject consumes nothing
  EXPECT_GT(pool_->command({"PTTL", l.redis_key("t:admin")}).as_integer(), 3'500'000);
  l.unblock("t:admin");
  EXPECT_FALSE(l.hit({s}, Mode::kPeek).blocked());
  l.hit({s}, Mode::kCount);
  l.reset("t:admin");
  EXPECT_DOUBLE_EQ(l.hit({s}, Mode::kPeek).subjects[0].counts[0], 0);
}

TEST_F(RateLimitTest, RedisDownIsAnIoError) {
  auto l = limiter();
  redis_.stop();
  EXPECT_THROW(l.hit({subject("t:down", {{5, 60s}})}, Mode::kCount), redis::IoError);
}

// hit_async through a Batcher: 40 concurrent consumes of a limit of 25 from 8 threads, answered
// on the batcher's threads: exactly 25 are counted (the script is atomic however calls are
// pipelined), every callback runs once, and the counts agree with a synchronous peek. With
// Redis gone the callback gets the IoError.
TEST_F(RateLimitTest, AsynchronousHitsThroughTheBatcherCountExactlyOnce) {
  auto l = limiter();
  redis::Batcher batcher(*pool_);
  std::atomic<int> counted{0}, answered{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        l.hit_async(batcher, {subject("t:async", {{25, 60s}})}, Mode::kConsume, 1,
                    [&](std::optional<Result> r, std::exception_ptr e) {
                      if (r && r->counted) ++counted;
                      if (e) ++errors;
                      ++answered;
                    });
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 200 && answered < 40; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(answered.load(), 40);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(counted.load(), 25);
  EXPECT_DOUBLE_EQ(l.hit({subject("t:async", {{25, 60s}})}, Mode::kPeek).subjects[0].counts[0], 25);
  EXPECT_THROW(l.hit_async(batcher, {}, Mode::kCount, 1, {}), std::invalid_argument);
  EXPECT_THROW(l.hit_async(batcher, {subject("t:x", {{1, 60s}})}, Mode::kPeek, 1, {}),
               std::invalid_argument);

  redis_.stop();
  std::atomic<bool> io_error{false}, done{false};
  l.hit_async(batcher, {subject("t:down", {{5, 60s}})}, Mode::kCount, 1,
              [&](std::optional<Result> r, std::exception_ptr e) {
                try {
                  if (e) std::rethrow_exception(e);
                } catch (const redis::IoError&) {
                  io_error = !r.has_value();
                } catch (...) {
                }
                done = true;
              });
  for (int i = 0; i < 300 && !done; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(done.load());
  EXPECT_TRUE(io_error.load());
}

// peek_async (authpolicy's allow) through a Batcher: the same result as the synchronous peek
// (counts, blocks, reached/exceeded) for several subjects, one of them never counted; with
// Redis gone the callback gets the IoError.
TEST_F(RateLimitTest, AsynchronousPeekAgreesWithPeek) {
  auto l = limiter();
  redis::Batcher batcher(*pool_);
  std::vector<Subject> s{subject("t:pa", {{3, 60s}, {10, 3600s}}, 600s),
                         subject("t:pb", {{2, 60s}}), subject("t:never", {{5, 60s}})};
  for (int i = 0; i < 4; ++i) l.hit({s[0], s[1]}, Mode::kCount);
  now_ += 90'000;  // half way into the next minute: the previous window's counts weigh half
  l.hit({s[1]}, Mode::kCount);
  auto peek_async = [&](std::vector<Subject> subjects) {
    std::promise<std::pair<std::optional<Result>, std::exception_ptr>> promise;
    l.peek_async(batcher, std::move(subjects), [&](std::optional<Result> r, std::exception_ptr e) {
      promise.set_value({std::move(r), e});
    });
    return promise.get_future().get();
  };
  auto [got, error] = peek_async(s);
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(error);
  auto sync = l.hit(s, Mode::kPeek);
  ASSERT_EQ(got->subjects.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got->subjects[i].counts, sync.subjects[i].counts) << i;
    EXPECT_EQ(got->subjects[i].blocked_for, sync.subjects[i].blocked_for) << i;
    EXPECT_EQ(got->subjects[i].reached, sync.subjects[i].reached) << i;
    EXPECT_EQ(got->subjects[i].exceeded, sync.subjects[i].exceeded) << i;
  }
  EXPECT_GT(got->subjects[0].blocked_for.count(), 0);
  EXPECT_EQ(got->subjects[2].counts, std::vector<double>{0});
  EXPECT_THROW(l.peek_async(batcher, {}, {}), std::invalid_argument);

  redis_.stop();
  auto [none, down] = peek_async(s);
  EXPECT_FALSE(none.has_value());
  ASSERT_TRUE(down);
  EXPECT_THROW(std::rethrow_exception(down), redis::IoError);
}

// Two real processes (fork, each with its own pool) count one subject: no event is lost and
// exactly `max` consume requests succeed between them.
TEST_F(RateLimitTest, TwoProcessesShareOneCounter) {
  constexpr int kPerProcess = 300;
  constexpr int kMax = 400;
  pid_t children[2];
  for (pid_t& child : children) {
    child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      int ok = 0;
      try {
        redis::Pool pool(options_);
        Limiter l(pool, [] { return std::int64_t{1'700'000'000'000}; });
        Subject s{"t:shared", {{kMax, 3600s}}, {}};
        for (int i = 0; i < kPerProcess; ++i) ok += l.hit({s}, Mode::kConsume).counted ? 1 : 0;
      } catch (...) {
        _exit(255);
      }
      _exit(ok > 250 ? 250 : ok);  // exit codes are 8 bits: report min(ok, 250)
    }
  }
  int total_capped = 0;
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 255);
    total_capped += WEXITSTATUS(status);
  }
  EXPECT_GE(total_capped, 150);
  auto l = limiter();
  auto r = l.hit({Subject{"t:shared", {{kMax, 3600s}}, {}}}, Mode::kPeek);
  EXPECT_DOUBLE_EQ(r.subjects[0].counts[0], kMax);  // 600 tries, exactly 400 counted
}

}  // namespace
}  // namespace mxguard::common::ratelimit
