// Integration tests for common/redis/pool.cc against a private redis-server: concurrency,
// bounded size, fail-fast while Redis is down, one log line per state change, and recovery
// after a restart without outside help.
#include "common/redis/pool.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::common::redis {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::RedisServer;

metrics::Counter& counter(const char* name, const char* label, const char* value) {
  // Help strings must match the library's, as the registry keys families by name.
  const char* help = std::string_view(name) == "mxguard_redis_errors_total"
                         ? "Redis client errors by kind"
                         : "Redis connect attempts by result";
  return metrics::Registry::global().counter(name, help, {{label, value}});
}

ClientOptions options_for(const std::string& url) {
  ClientOptions o;
  o.url = url;
  o.connect_timeout = milliseconds(500);
  o.command_timeout = milliseconds(1000);
  o.pool_size = 4;
  o.reconnect_backoff_min = milliseconds(100);
  o.reconnect_backoff_max = milliseconds(400);
  return o;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(PoolTest, ConcurrentIncrementsAreExact) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  auto& connects = counter("mxguard_redis_connects_total", "result", "ok");
  auto before = connects.value();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        try {
          pool.command({"INCR", pool.key("counter")});
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(pool.command({"GET", "mxg:counter"}).as_string(), "4000");
  EXPECT_LE(connects.value() - before, 4u);  // never more connections than pool_size
}

TEST(PoolTest, ExhaustedPoolTimesOut) {
  RedisServer server;
  ClientOptions o = options_for(server.url());
  o.pool_size = 1;
  o.command_timeout = milliseconds(200);
  Pool pool(o);
  {
    auto lease = pool.borrow();
    auto start = Clock::now();
    EXPECT_THROW(pool.borrow(), TimeoutError);
    EXPECT_GE(Clock::now() - start, milliseconds(180));
  }
  EXPECT_EQ(pool.command({"PING"}).as_string(), "PONG");  // the lease came back
}

TEST(PoolTest, TimedOutConnectionIsNeverReused) {
  RedisServer server;
  ClientOptions o = options_for(server.url());
  o.pool_size = 1;
  o.command_timeout = milliseconds(100);
  Pool pool(o);
  pool.command({"SET", "k", "v"});
  EXPECT_THROW(pool.command({"DEBUG", "SLEEP", "0.3"}), TimeoutError);
  std::this_thread::sleep_for(milliseconds(400));
  // A reused connection would now read the late "+OK" of DEBUG SLEEP instead of "v".
  EXPECT_EQ(pool.command({"GET", "k"}).as_string(), "v");
  EXPECT_TRUE(pool.up());  // a slow command is not an outage
}

TEST(PoolTest, FailsFastWhileDownAndRecoversAfterRestart) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  pool.command({"SET", "k", "before"});
  auto& connect_errors = counter("mxguard_redis_connects_total", "result", "error");
  auto& io_errors = counter("mxguard_redis_errors_total", "kind", "io");
  auto connect_errors_before = connect_errors.value();
  auto io_before = io_errors.value();

  ::testing::internal::CaptureStderr();
  server.stop();
  auto start = Clock::now();
  int failures = 0;
  for (int i = 0; i < 50; ++i) {
    try {
      pool.command({"GET", "k"});
    } catch (const IoError&) {
      ++failures;
    }
  }
  auto took = Clock::now() - start;
  EXPECT_EQ(failures, 50);
  EXPECT_LT(took, milliseconds(100));  // well under one connect timeout, let alone 50
  EXPECT_FALSE(pool.up());
  // One connect attempt; all other calls failed fast inside the backoff interval.
  EXPECT_EQ(connect_errors.value() - connect_errors_before, 1u);
  EXPECT_EQ(io_errors.value() - io_before, 50u);

  server.start();
  auto restarted = Clock::now();
  auto deadline = restarted + std::chrono::seconds(5);
  std::optional<std::string> value;
  while (Clock::now() < deadline) {
    try {
      value = pool.command({"GET", "k"}).as_optional_string();
      break;
    } catch (const IoError&) {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  auto recovered_after = Clock::now() - restarted;
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(pool.up());
  EXPECT_EQ(value, std::nullopt);                  // recovered; the restarted server kept no data
  EXPECT_LT(recovered_after, milliseconds(1000));  // within one max backoff (400 ms) and change
  EXPECT_EQ(count_of(log, "warning: redis redis://127.0.0.1:"), 1u) << log;
  EXPECT_EQ(count_of(log, " is down: "), 1u) << log;
  EXPECT_EQ(count_of(log, " is up again after "), 1u) << log;
  EXPECT_EQ(pool.command({"INCR", "k"}).as_integer(), 1);
}

TEST(PoolTest, KilledServerRecovers) {
  RedisServer server;
  Pool pool(options_for(server.url()));
  pool.command({"PING"});
  server.kill();
  EXPECT_THROW(pool.command({"PING"}), IoError);
  EXPECT_THROW(pool.command({"PING"}), IoError);
  server.start();
  std::this_thread::sleep_for(milliseconds(450));  // past the largest backoff
  EXPECT_EQ(pool.command({"PING"}).as_string(), "PONG");
}

// A peer that accepts TCP connections but never answers: the worst case, where every caller
// would otherwise wait for the full timeout.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 64), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(PoolTest, HungServerCostsOneTimeoutPerBackoffInterval) {
  SilentServer silent;
  // db 1 makes the connect send SELECT, which never gets an answer.
  ClientOptions o = options_for("redis://127.0.0.1:" + std::to_string(silent.port()) + "/1");
  o.command_timeout = milliseconds(200);
  o.reconnect_backoff_min = milliseconds(1000);
  o.reconnect_backoff_max = milliseconds(1000);
  Pool pool(o);
  auto start = Clock::now();
  EXPECT_THROW(pool.command({"PING"}), TimeoutError);
  EXPECT_GE(Clock::now() - start, milliseconds(180));
  start = Clock::now();
  for (int i = 0; i < 20; ++i) {
    try {
      pool.command({"PING"});
      ADD_FAILURE() << "silent server answered";
    } catch (const TimeoutError&) {
      ADD_FAILURE() << "waited for a timeout instead of failing fast";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("is down"), std::string::npos) << e.what();
    }
  }
  EXPECT_LT(Clock::now() - start, milliseconds(100));
}

// A stalled Redis (SIGSTOP: a long fork, a dropped network path) accepts connects through the
// kernel and answers nothing. After breaker_threshold timeouts in a row the pool fails at once,
// probes in the background, and is back without any caller's help once Redis answers.
TEST(PoolTest, StalledServerTripsTheBreakerAndRecoversByItself) {
  RedisServer server;
  ClientOptions o = options_for(server.url());
  o.command_timeout = milliseconds(200);
  o.breaker_threshold = 3;
  Pool pool(o);
  auto& trips = metrics::Registry::global().counter(
      "mxguard_redis_breaker_trips_total",
      "times consecutive Redis command timeouts made the client fail fast (a stalled Redis)");
  auto trips_before = trips.value();
  pool.command({"SET", "k", "v"});

  ::testing::internal::CaptureStderr();
  server.pause();
  for (int i = 0; i < 3; ++i) {
    auto start = Clock::now();
    EXPECT_THROW(pool.command({"GET", "k"}), TimeoutError) << i;
    EXPECT_GE(Clock::now() - start, milliseconds(180));
  }
  EXPECT_FALSE(pool.up());
  EXPECT_EQ(trips.value() - trips_before, 1u);
  auto start = Clock::now();
  for (int i = 0; i < 100; ++i) {
    try {
      pool.command({"GET", "k"});
      ADD_FAILURE() << "a stalled server answered";
    } catch (const TimeoutError&) {
      ADD_FAILURE() << "waited for a timeout with the breaker open";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("consecutive command timeouts"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_LT(Clock::now() - start, milliseconds(100));  // 100 calls, not 100 timeouts

  server.resume();
  auto resumed = Clock::now();
  while (!pool.up() && Clock::now() - resumed < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(milliseconds(10));  // no calls: the probe alone must notice
  }
  EXPECT_TRUE(pool.up());
  // Backoff 100, 200, 400, 400 ms... plus one probe's PING timeout.
  EXPECT_LT(Clock::now() - resumed, milliseconds(1000));
  EXPECT_EQ(pool.command({"GET", "k"}).as_string(), "v");
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_of(log, " is not answering: 3 consecutive command timeouts"), 1u) << log;
  EXPECT_EQ(count_of(log, " is up again after "), 1u) << log;
}

TEST(PoolTest, SlowCommandsBetweenSuccessesDoNotTripTheBreaker) {
  RedisServer server;
  ClientOptions o = options_for(server.url());
  o.command_timeout = milliseconds(100);
  o.breaker_threshold = 2;
  Pool pool(o);
  for (int i = 0; i < 3; ++i) {
    EXPECT_THROW(pool.command({"DEBUG", "SLEEP", "0.2"}), TimeoutError);
    std::this_thread::sleep_for(milliseconds(150));  // the server sleeps out the rest
    EXPECT_EQ(pool.command({"PING"}).as_string(), "PONG");
  }
  EXPECT_TRUE(pool.up());
}

TEST(PoolTest, WrongPasswordFailsThenFailsFast) {
  RedisServer server(RedisServer::Options{.requirepass = "right"});
  Pool pool(options_for("redis://:wrong@127.0.0.1:" + std::to_string(server.port())));
  EXPECT_THROW(pool.command({"PING"}), ReplyError);
  EXPECT_THROW(pool.command({"PING"}), IoError);
  EXPECT_FALSE(pool.up());
}

TEST(PoolTest, PipelineEvalAndPrefix) {
  RedisServer server;
  Pool pool(options_for(server.unix_url()));
  EXPECT_EQ(pool.key("grey:abc"), "mxg:grey:abc");
  auto replies = pool.pipeline({{"SET", pool.key("a"), "1"}, {"INCR", pool.key("a")}});
  EXPECT_EQ(replies[1].as_integer(), 2);
  Script script("get_set",
                "local old = redis.call('GET', KEYS[1]); "
                "redis.call('SET', KEYS[1], ARGV[1]); return old");
  EXPECT_EQ(pool.eval(script, {pool.key("a")}, {"x"}).as_string(), "2");
  pool.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(pool.eval(script, {pool.key("a")}, {"y"}).as_string(), "x");
}

TEST(PoolTest, InvalidOptionsAreRejected) {
  ClientOptions o;
  o.url = "redis://h:notaport";
  EXPECT_THROW(Pool{o}, std::invalid_argument);
  o = ClientOptions{};
  o.pool_size = 0;
  EXPECT_THROW(Pool{o}, std::invalid_argument);
  o = ClientOptions{};
  o.command_timeout = milliseconds(0);
  EXPECT_THROW(Pool{o}, std::invalid_argument);
  o = ClientOptions{};
  o.reconnect_backoff_max = milliseconds(10);
  EXPECT_THROW(Pool{o}, std::invalid_argument);
  o = ClientOptions{};
  o.breaker_threshold = 0;
  EXPECT_THROW(Pool{o}, std::invalid_argument);
}

}  // namespace
}  // namespace mxguard::common::redis
