// Issue 18's failover under load, end to end: mail through a private Postfix whose policy
// service is the real mxguard-policyd, greylisting on a Redis Sentinel deployment on loopback
// (a master, a replica, three sentinels). Senders on four threads retry deferred messages as an
// MTA would; in the middle of it the master is SIGKILLed and Sentinel promotes the replica.
// Counted and printed: messages accepted, first attempts deferred, decisions that failed open
// (policyd's store-error counter), and messages lost — accepted by Postfix but never delivered,
// or refused for good — which must be 0. Afterwards greylisting works again through the new
// master. Must never touch the system Postfix or Redis.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fixtures/http_client.h"
#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-policyd";
const std::string kExternal = "127.0.0.2";  // policyd trusts only 127.0.0.1
constexpr int kThreads = 4;
constexpr int kPerThread = 12;

// The summed value of every series of `name` in policyd's /metrics.
long metric(int port, const std::string& name) {
  HttpClient http("127.0.0.1", port);
  HttpResponse r = http.raw("GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
  long sum = 0;
  std::regex line("^" + name + R"((\{[^}]*\})? ([0-9.e+]+)$)");
  std::istringstream in(r.body);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) sum += static_cast<long>(std::stod(m[2].str()));
  }
  return sum;
}

TEST(PostfixFailoverTest, NoMessageIsLostWhileSentinelPromotesTheReplica) {
  if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  RedisSentinelSet redis("mxg");
  TempDir dir;
  int policy_port = free_tcp_port(), metrics_port = free_tcp_port();
  write_file(dir / "empty", "# nothing\n");
  write_file(dir / "policyd.conf",
             "listen = inet:127.0.0.1:" + std::to_string(policy_port) +
                 "\nmetrics-listen = inet:127.0.0.1:" + std::to_string(metrics_port) +
                 "\nredis-url = " + redis.url() +
                 "\nredis-timeout = 300ms\ntrusted-networks = 127.0.0.1/32\n"
                 "greylist-delay = 1s\ngreylist-hostname = mx.mxguard.test\n"
                 "greylist-whitelist-clients = " +
                 (dir / "empty").string() +
                 "\ngreylist-whitelist-recipients = " + (dir / "empty").string() + "\n");
  Process policyd(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir / "policyd.conf").string()},
      dir / "policyd.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", policy_port, seconds(10))) << policyd.log();
  PostfixInstance::Options o;
  o.policy_service = "inet:127.0.0.1:" + std::to_string(policy_port);
  PostfixInstance postfix(o);

  // Each thread sends its messages (distinct triplets), then retries the deferred ones after the
  // delay, until all are accepted or a minute has passed. A 5xx is a message lost.
  std::mutex mutex;
  std::set<std::string> accepted;
  std::vector<std::string> refused;
  std::atomic<int> attempts{0}, deferred{0};
  auto sender = [&](int t) {
    std::vector<std::string> todo;
    for (int i = 0; i < kPerThread; ++i) {
      todo.push_back("t" + std::to_string(t) + "m" + std::to_string(i) + "@sender.example");
    }
    auto deadline = Clock::now() + seconds(60);
    while (!todo.empty() && Clock::now() < deadline) {
      std::vector<std::string> again;
      auto pass_started = Clock::now();
      for (const auto& from : todo) {
        SwaksOptions m;
        m.from = from;
        m.to = {"rcpt" + std::to_string(t) + "@rcpt.example"};
        m.local_interface = kExternal;
        m.headers = {"Subject: " + from};
        SwaksResult r = postfix.send(m);
        ++attempts;
        std::lock_guard lock(mutex);
        if (r.data_code == 250) {
          accepted.insert(from);
        } else if (r.rcpt_code / 100 == 4 || r.mail_code / 100 == 4 || r.data_code / 100 == 4 ||
                   r.exit_code != 0) {
          if (r.rcpt_code == 450) ++deferred;
          again.push_back(from);  // an MTA keeps it queued and retries
        } else {
          refused.push_back(from + ": " + r.transcript);
        }
      }
      todo = std::move(again);
      auto since = Clock::now() - pass_started;
      if (!todo.empty() && since < milliseconds(1100)) {
        std::this_thread::sleep_for(milliseconds(1100) - since);
      }
    }
  };
  std::vector<std::thread> threads;
  auto started = Clock::now();
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(sender, t);
  // Kill the master while the first attempts are in flight.
  std::this_thread::sleep_for(milliseconds(1500));
  long errors_before = metric(metrics_port, "mxguard_greylist_store_errors_total");
  redis.master().kill();
  auto kill_time = Clock::now();
  for (auto& t : threads) t.join();
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  long failed_open = metric(metrics_port, "mxguard_greylist_store_errors_total") - errors_before;

  const std::size_t total = kThreads * kPerThread;
  EXPECT_TRUE(refused.empty()) << refused.size() << " refused, first: " << refused.front();
  EXPECT_EQ(accepted.size(), total);
  EXPECT_TRUE(postfix.wait_for_delivery(accepted.size(), seconds(60)));
  std::set<std::string> delivered;
  for (const auto& m : postfix.delivered()) delivered.insert(m.sender);
  std::size_t lost = 0;
  for (const auto& from : accepted) lost += delivered.count(from) == 0 ? 1 : 0;
  EXPECT_EQ(lost, 0u);

  // Greylisting is shared again through the new master: a new triplet is deferred, and its
  // retry after the delay passes.
  SwaksOptions fresh;
  fresh.from = "after-failover@sender.example";
  fresh.to = {"late@rcpt.example"};
  fresh.local_interface = kExternal;
  int first = 0;
  auto until = Clock::now() + seconds(20);
  do {
    first = postfix.send(fresh).rcpt_code;
    if (first != 450) std::this_thread::sleep_for(milliseconds(200));
    fresh.from = "after-failover" + std::to_string(Clock::now().time_since_epoch().count()) +
                 "@sender.example";
  } while (first != 450 && Clock::now() < until);
  EXPECT_EQ(first, 450) << "greylisting never came back after the failover";

  std::cerr << "failover through Postfix: " << total << " messages from " << kThreads
            << " senders in " << took.count() << " ms (" << attempts << " SMTP attempts, "
            << deferred << " deferred with 450); " << failed_open
            << " greylist decisions failed open; " << lost << " lost; "
            << (refused.empty() ? 0 : refused.size()) << " refused; master killed "
            << std::chrono::duration_cast<milliseconds>(kill_time - started).count() << " ms in\n";
  if (HasFailure()) {
    std::cerr << "--- policyd log:\n"
              << policyd.log() << "--- maillog:\n"
              << postfix.maillog() << redis.logs();
  }
}

}  // namespace
}  // namespace mxguard::testing
