// Integration tests for common/redis/sentinel.cc and Pool with a sentinel:// URL against a real
// Redis Sentinel deployment on loopback: a master, a replica and three sentinels (quorum 2).
// The master is killed; Sentinel promotes the replica; the pool follows without outside help,
// counts the failover, and keeps working when the old master returns as a replica.
#include "common/redis/sentinel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/redis/connection.h"
#include "common/redis/errors.h"
#include "common/redis/pool.h"
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
  o.command_timeout = milliseconds(500);
  o.pool_size = 4;
  o.reconnect_backoff_min = milliseconds(100);
  o.reconnect_backoff_max = milliseconds(500);
  return o;
}

Reply ask(int port, const std::vector<std::string>& argv) {
  Url url;
  url.port = port;
  Connection connection(url, options_for("redis://127.0.0.1"));
  return connection.command(argv);
}

std::string role_of(int port) { return testing::RedisSentinelSet::role_of(port); }

// Waits until condition() holds; false after the timeout.
template <typename Condition>
bool eventually(Condition condition, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return condition();
}

class SentinelTest : public ::testing::Test {
 protected:
  std::string url(const std::string& sentinels_part) const {
    return "sentinel://" + sentinels_part + "/mxg/0";
  }
  std::string all_sentinels() {
    return set_.sentinel(0).endpoint() + "," + set_.sentinel(1).endpoint() + "," +
           set_.sentinel(2).endpoint();
  }
  std::string address(const RedisServer& server) const {
    return "127.0.0.1:" + std::to_string(server.port());
  }

  testing::RedisSentinelSet set_{"mxg"};  // waits until a failover can happen
  RedisServer& master_ = set_.master();
  RedisServer& replica_ = set_.replica();
};

TEST_F(SentinelTest, ConnectsToTheMasterTheSentinelsName) {
  Pool pool(options_for(url(all_sentinels())));
  pool.command({"SET", "k", "v"});
  EXPECT_EQ(pool.master(), address(master_));
  EXPECT_EQ(ask(master_.port(), {"GET", "k"}).as_string(), "v");
  EXPECT_EQ(pool.failovers(), 0u);
}

TEST_F(SentinelTest, DeadSentinelsAreSkipped) {
  set_.sentinel(0).stop();
  // A port where nothing listens first, then a stopped sentinel, then a live one.
  Pool pool(options_for(url("127.0.0.1:1," + all_sentinels())));
  EXPECT_EQ(pool.command({"PING"}).as_string(), "PONG");
  EXPECT_EQ(pool.master(), address(master_));
}

TEST_F(SentinelTest, UnknownMasterNameIsAnError) {
  Pool pool(options_for("sentinel://" + set_.sentinel(1).endpoint() + "/nosuch"));
  try {
    pool.command({"PING"});
    ADD_FAILURE() << "expected an error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("does not know master 'nosuch'"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(pool.up());
}

TEST_F(SentinelTest, NeverWritesToAReplica) {
  // A sentinel URL can only reach the master, and a replica refusing a write breaks the
  // connection (IoError) instead of looking like a bug in the caller (ReplyError).
  Url url;
  url.port = replica_.port();
  Connection to_replica(url, options_for("redis://127.0.0.1"));
  EXPECT_THROW(to_replica.command({"SET", "k", "v"}), IoError);
  EXPECT_TRUE(to_replica.broken());
}

TEST_F(SentinelTest, FollowsAFailoverAndSurvivesTheOldMastersReturn) {
  Pool pool(options_for(url(all_sentinels())));
  pool.command({"SET", "k", "before"});
  pool.command({"WAIT", "1", "2000"});  // the replica has it before the master dies
  ASSERT_EQ(pool.master(), address(master_));

  master_.kill();
  auto killed = Clock::now();
  int failed = 0;
  bool recovered = eventually(
      [&] {
        try {
          pool.command({"INCR", "after"});
          return true;
        } catch (const IoError&) {
          ++failed;
          return false;
        }
      },
      std::chrono::seconds(30));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - killed);
  ASSERT_TRUE(recovered) << set_.logs();
  EXPECT_GT(failed, 0);
  EXPECT_EQ(pool.master(), address(replica_));
  EXPECT_EQ(pool.failovers(), 1u);
  EXPECT_EQ(pool.command({"GET", "k"}).as_string(), "before");
  EXPECT_EQ(role_of(replica_.port()), "master");
  std::cerr << "failover followed after " << took.count() << " ms (" << failed
            << " calls failed meanwhile)\n";

  // The old master comes back, as a master at first; Sentinel turns it into a replica of the
  // new one. The pool stays with the new master throughout.
  master_.start();
  EXPECT_TRUE(
      eventually([&] { return role_of(master_.port()) == "slave"; }, std::chrono::seconds(30)))
      << set_.logs();
  for (int i = 0; i < 20; ++i) {
    pool.command({"INCR", "after"});
  }
  EXPECT_EQ(pool.master(), address(replica_));
  EXPECT_EQ(pool.failovers(), 1u);
  EXPECT_EQ(ask(replica_.port(), {"GET", "after"}).as_string(), "21");
}

}  // namespace
}  // namespace mxguard::common::redis
