// The /healthz Redis check against a real redis-server: healthy while it answers PING, a
// reason naming the server when it does not, at most one PING per fresh interval, and no
// false alarm from a connection left over from before a Redis restart.
#include "common/health/redis_check.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::common::health {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

redis::ClientOptions options_for(const std::string& url) {
  redis::ClientOptions o;
  o.url = url;
  return o;
}

TEST(RedisCheckTest, HealthyWhileRedisAnswers) {
  RedisServer redis;
  RedisCheck check(options_for(redis.url()), 0ms);
  auto r = check();
  EXPECT_TRUE(r.ok) << r.reason;
}

TEST(RedisCheckTest, ADeadServerFailsFastAndIsNamed) {
  std::string url = "redis://127.0.0.1:" + std::to_string(testing::free_tcp_port()) + "/0";
  RedisCheck check(options_for(url), 0ms);
  auto t0 = std::chrono::steady_clock::now();
  auto first = check();
  auto second = check();  // within the pool's backoff: no new connect attempt
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_FALSE(first.ok);
  EXPECT_EQ(first.reason, "connect to " + url + ": Connection refused");
  EXPECT_FALSE(second.ok);
  EXPECT_EQ(second.reason.rfind(url + " is down (", 0), 0u) << second.reason;
}

// The daemon's own pool reports the server's state; the check's pool says nothing of its own:
// no mxguard_redis_up series, connect count or breaker count from it (log lines follow the
// same flag in pool.cc). The errors it meets are still counted (mxguard_redis_errors_total).
// (The tests before it in this binary use only the quiet check pools.)
TEST(RedisCheckTest, TheCheckIsQuietAboutTheServersState) {
  std::string url = "redis://127.0.0.1:" + std::to_string(testing::free_tcp_port()) + "/0";
  RedisCheck check(options_for(url), 0ms);
  EXPECT_FALSE(check().ok);
  EXPECT_FALSE(check().ok);
  std::string after = metrics::Registry::global().render();
  EXPECT_EQ(after.find(url), std::string::npos) << after;
  EXPECT_EQ(after.find("mxguard_redis_connects_total"), std::string::npos) << after;
  EXPECT_EQ(after.find("mxguard_redis_breaker_trips_total"), std::string::npos) << after;

  // The same server through a reporting pool shows up.
  redis::Pool pool(options_for(url));
  EXPECT_THROW(pool.command({"PING"}), redis::IoError);
  std::string reported = metrics::Registry::global().render();
  EXPECT_NE(reported.find("mxguard_redis_up{url=\"" + url + "\"} 0"), std::string::npos)
      << reported;
}

TEST(RedisCheckTest, AnswersFromTheLastPingWithinTheFreshInterval) {
  RedisServer redis;
  RedisCheck check(options_for(redis.url()), 400ms);
  EXPECT_TRUE(check().ok);
  redis.stop();
  EXPECT_TRUE(check().ok) << "no new PING within 400 ms";
  std::this_thread::sleep_for(450ms);
  auto r = check();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find(redis.url()), std::string::npos) << r.reason;
  redis.start();
  std::this_thread::sleep_for(450ms);
  // Back: the pool's first reconnect attempt may still be in backoff (100 ms doubling).
  bool back = false;
  for (int i = 0; i < 30 && !back; ++i) {
    back = check().ok;
    if (!back) std::this_thread::sleep_for(450ms);
  }
  EXPECT_TRUE(back);
}

TEST(RedisCheckTest, AConnectionFromBeforeARestartIsNoFalseAlarm) {
  RedisServer redis;
  RedisCheck check(options_for(redis.url()), 0ms);
  ASSERT_TRUE(check().ok);
  redis.stop();
  redis.start();  // same port: the check's kept connection is dead, Redis is not
  auto r = check();
  EXPECT_TRUE(r.ok) << r.reason;
}

}  // namespace
}  // namespace mxguard::common::health
