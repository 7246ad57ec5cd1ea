// The health registry behind /healthz: all checks pass → "ok"; each failing check is one
// "name: reason" line; a throwing check fails; names are unique; checks run outside the lock.
#include "common/metrics/health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mxguard::common::metrics {
namespace {

TEST(HealthTest, NoChecksIsHealthy) {
  Health h;
  auto r = h.evaluate();
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.text, "ok\n");
}

TEST(HealthTest, EveryFailingCheckIsOneLineInOrder) {
  Health h;
  h.add("serving", [] { return Health::Result::good(); });
  h.add("redis", [] { return Health::Result::bad("redis://127.0.0.1:6379/0 is down"); });
  h.add("clamd", [] { return Health::Result::bad("no clamd\nanswers"); });
  auto r = h.evaluate();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.text, "redis: redis://127.0.0.1:6379/0 is down\nclamd: no clamd answers\n");
}

TEST(HealthTest, AThrowingCheckFailsWithItsMessage) {
  Health h;
  h.add("redis", []() -> Health::Result { throw std::runtime_error("boom"); });
  auto r = h.evaluate();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.text, "redis: boom\n");
}

TEST(HealthTest, AnEmptyReasonStillSaysSomething) {
  Health h;
  h.add("serving", [] { return Health::Result::bad(""); });
  EXPECT_EQ(h.evaluate().text, "serving: failed\n");
}

TEST(HealthTest, ANameIsTakenOnce) {
  Health h;
  h.add("redis", [] { return Health::Result::good(); });
  EXPECT_THROW(h.add("redis", [] { return Health::Result::good(); }), std::logic_error);
}

TEST(HealthTest, ChecksFollowStateChanges) {
  Health h;
  std::atomic<bool> serving{false};
  h.add("serving",
        [&] { return serving ? Health::Result::good() : Health::Result::bad("starting"); });
  EXPECT_EQ(h.evaluate().text, "serving: starting\n");
  serving = true;
  EXPECT_TRUE(h.evaluate().ok);
}

// A check runs without the registry's lock held: it may add a check itself (no deadlock), and
// evaluations from several threads run concurrently with additions.
TEST(HealthTest, ChecksRunOutsideTheLockAndAreThreadSafe) {
  Health h;
  std::atomic<int> added{0};
  h.add("adder", [&] {
    h.add("extra" + std::to_string(added++), [] { return Health::Result::good(); });
    return Health::Result::good();
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) EXPECT_TRUE(h.evaluate().ok);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(added.load(), 200);
}

}  // namespace
}  // namespace mxguard::common::metrics
