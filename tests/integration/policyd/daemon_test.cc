// Starts the real mxguard-policyd binary with a per-test config (as PowerDNS's regression tests
// do) and checks what an administrator relies on: answers over the socket, --check-config
// errors with file:line, SIGHUP reload, metrics, privilege drop, SIGTERM shutdown.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-policyd";

class PolicydDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_tcp_port();
    metrics_port_ = free_tcp_port();
    write_file(dir_ / "clients", "# none yet\n");
    write_file(dir_ / "recipients", "postmaster@\n");
    write_config("");
  }
  void write_config(const std::string& extra) {
    write_file(
        dir_ / "policyd.conf",
        "listen = inet:127.0.0.1:" + std::to_string(port_) + "\n" + "redis-url = " + redis_.url() +
            "\n" + "metrics-listen = inet:127.0.0.1:" + std::to_string(metrics_port_) + "\n" +
            "greylist-delay = 2s\n"
            "greylist-whitelist-clients = " +
            (dir_ / "clients").string() + "\n" +
            "greylist-whitelist-recipients = " + (dir_ / "recipients").string() + "\n" + extra);
  }
  Process start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{kBinary,  "--foreground", "--log-target",
                                  "stderr", "-c",           (dir_ / "policyd.conf").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Process p(argv, dir_ / "policyd.log");
    if (!wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) {
      ADD_FAILURE() << "mxguard-policyd did not start:\n" << p.log();
    }
    return p;
  }

  TempDir dir_;
  RedisServer redis_;
  int port_ = 0;
  int metrics_port_ = 0;
};

TEST_F(PolicydDaemonTest, GreylistsOverTheSocketAndPassesAfterTheDelay) {
  Process daemon = start();
  PolicyClient client("127.0.0.1", port_);
  auto req = rcpt_request("198.51.100.7", "alice@sender.example", "bob@rcpt.example");
  EXPECT_EQ(client.ask(req).rfind("DEFER_IF_PERMIT ", 0), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_EQ(client.ask(req).rfind("PREPEND X-Greylist: delayed ", 0), 0u);
  std::string log = daemon.log();
  EXPECT_NE(log.find("NOQUEUE: check=greylist result=greylist"), std::string::npos) << log;
  EXPECT_NE(log.find("client=unknown[198.51.100.7] sender=<alice@sender.example> "
                     "recipient=<bob@rcpt.example> helo=client.example spf=- reason=new age=0"),
            std::string::npos)
      << log;
}

TEST_F(PolicydDaemonTest, CheckConfigNamesFileAndLine) {
  write_file(dir_ / "clients", "ok.example\n/bad(/\n");
  std::string out;
  int rc = run_command({kBinary, "-c", (dir_ / "policyd.conf").string(), "--check-config"}, &out);
  EXPECT_EQ(rc, 78);
  EXPECT_NE(out.find((dir_ / "clients").string() + ":2: bad regular expression"), std::string::npos)
      << out;
  write_file(dir_ / "clients", "ok.example\n");
  rc = run_command({kBinary, "-c", (dir_ / "policyd.conf").string(), "--check-config"}, &out);
  EXPECT_EQ(rc, 0) << out;
  rc = run_command({kBinary, "-c", (dir_ / "policyd.conf").string(), "--dump-config"}, &out);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("greylist-delay = 2s\n"), std::string::npos) << out;
}

TEST_F(PolicydDaemonTest, SighupReloadsWhitelistsWithoutDroppingConnections) {
  Process daemon = start();
  PolicyClient client("127.0.0.1", port_);
  auto req = rcpt_request("198.51.100.7", "alice@sender.example", "bob@rcpt.example");
  EXPECT_NE(client.ask(req), "DUNNO");
  write_file(dir_ / "clients", "198.51.100.0/24\n");
  ::kill(daemon.pid(), SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 50 && !reloaded; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reloaded = daemon.log().find("reload: done") != std::string::npos;
  }
  ASSERT_TRUE(reloaded) << daemon.log();
  EXPECT_EQ(client.ask(req), "DUNNO");  // same connection, new whitelist
  // A broken whitelist on reload keeps the running configuration.
  write_file(dir_ / "clients", "/bad(/\n");
  ::kill(daemon.pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_NE(daemon.log().find("reload failed, keeping the running configuration"),
            std::string::npos);
  EXPECT_EQ(client.ask(req), "DUNNO");
}

TEST_F(PolicydDaemonTest, ServesMetricsAndCountsDecisions) {
  Process daemon = start();
  PolicyClient client("127.0.0.1", port_);
  client.ask(rcpt_request("198.51.100.7", "a@s.example", "b@r.example"));
  client.ask(rcpt_request("127.0.0.1", "a@s.example", "b@r.example"));
  std::string m = http_get_metrics(metrics_port_);
  EXPECT_NE(m.find("HTTP/1.0 200 OK"), std::string::npos);
  EXPECT_NE(m.find("mxguard_policyd_decisions_total{check=\"greylist\",result=\"greylist\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("mxguard_policyd_decisions_total{check=\"skip\",result=\"trusted\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("mxguard_policyd_request_seconds_count 2"), std::string::npos);
}

// Issue 20: /healthz on the metrics endpoint is 200 while Redis answers and 503 naming Redis
// once it is stopped - with no mail traffic to notice it - and 200 again when it is back.
TEST_F(PolicydDaemonTest, HealthzFollowsRedis) {
  Process daemon = start();
  std::string h = wait_for_http_status(metrics_port_, "/healthz", 200, std::chrono::seconds(5));
  EXPECT_EQ(h.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << h << daemon.log();
  EXPECT_NE(h.find("\r\n\r\nok\n"), std::string::npos) << h;
  redis_.stop();
  h = wait_for_http_status(metrics_port_, "/healthz", 503, std::chrono::seconds(10));
  EXPECT_EQ(h.rfind("HTTP/1.0 503 Service Unavailable\r\n", 0), 0u) << h << daemon.log();
  EXPECT_NE(h.find("\r\n\r\nredis: "), std::string::npos) << h;
  EXPECT_NE(h.find(redis_.url()), std::string::npos) << h;
  redis_.start();
  h = wait_for_http_status(metrics_port_, "/healthz", 200, std::chrono::seconds(15));
  EXPECT_EQ(h.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << h << daemon.log();
}

// With SPF as the only check Redis is no dependency: stopping it leaves /healthz at 200.
TEST_F(PolicydDaemonTest, HealthzIgnoresRedisWhenNoCheckUsesIt) {
  write_config("checks = spf\n");
  Process daemon = start();
  std::string h = wait_for_http_status(metrics_port_, "/healthz", 200, std::chrono::seconds(5));
  ASSERT_EQ(h.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << h << daemon.log();
  redis_.stop();
  h = wait_for_http_status(metrics_port_, "/healthz", 503, std::chrono::seconds(2));
  EXPECT_EQ(h.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << h << daemon.log();
}

TEST_F(PolicydDaemonTest, DropsPrivilegesAndStopsOnSigterm) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Process daemon = start({"--user", "nobody"});
  // The socket listens before the privileges are dropped (it is opened as root): wait for it.
  std::string status;
  for (int i = 0; i < 200; ++i) {
    status = read_file("/proc/" + std::to_string(daemon.pid()) + "/status");
    if (status.find("Uid:\t65534\t65534\t65534\t65534") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(status.find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos) << status;
  PolicyClient client("127.0.0.1", port_);
  EXPECT_NE(client.ask(rcpt_request("198.51.100.7", "a@s.example", "b@r.example")), "");
  ::kill(daemon.pid(), SIGTERM);
  EXPECT_EQ(daemon.wait_exit(std::chrono::seconds(5)), 0) << daemon.log();
}

// Issue 16: the units are Type=notify with a watchdog. The daemon tells systemd READY=1 once
// its socket listens, pings WATCHDOG=1 at half of WATCHDOG_USEC, brackets a reload with
// RELOADING=1 / READY=1 and says STOPPING=1 on SIGTERM - here to a datagram socket of ours
// standing in for systemd's.
TEST_F(PolicydDaemonTest, TellsSystemdReadyWatchdogReloadAndStop) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = (dir_ / "notify").string();
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // The next message other than WATCHDOG=1 ("(nothing)" after 5 s); counts the pings.
  int pings = 0;
  auto next_state = [fd, &pings](std::string& out) {
    char buf[512];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        out = "(nothing)";
        return;
      }
      out.assign(buf, static_cast<std::size_t>(n));
      if (out != "WATCHDOG=1") return;
      ++pings;
    }
  };
  std::string state;
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "200000", 1);
  Process daemon = start();
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  next_state(state);
  EXPECT_EQ(state, "READY=1\nSTATUS=serving");
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  ::kill(daemon.pid(), SIGHUP);
  next_state(state);
  EXPECT_EQ(state, "RELOADING=1");
  next_state(state);
  EXPECT_EQ(state, "READY=1");
  EXPECT_GE(pings, 2) << "WATCHDOG=1 every 100 ms";
  ::kill(daemon.pid(), SIGTERM);
  next_state(state);
  EXPECT_EQ(state, "STOPPING=1");
  EXPECT_EQ(daemon.wait_exit(std::chrono::seconds(5)), 0) << daemon.log();
  ::close(fd);
}

TEST_F(PolicydDaemonTest, GarbageClosesTheConnectionAndTheDaemonKeepsServing) {
  Process daemon = start();
  {
    PolicyClient bad("127.0.0.1", port_);
    EXPECT_EQ(bad.raw(std::string("\x00\x01garbage without equals\n", 25)), "");
  }
  PolicyClient good("127.0.0.1", port_);
  EXPECT_NE(good.ask(rcpt_request("198.51.100.7", "a@s.example", "b@r.example")), "");
  EXPECT_NE(daemon.log().find("warning: policy: closing connection: NUL byte in request"),
            std::string::npos)
      << daemon.log();
}

}  // namespace
}  // namespace mxguard::testing
