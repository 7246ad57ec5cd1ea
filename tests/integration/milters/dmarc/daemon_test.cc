// The mxguard-dmarc binary: configuration errors are exit 78 and name file:line (bad values,
// a missing public suffix list); a SIGUSR1 reload with a broken file keeps the running
// configuration; the metrics endpoint counts decisions; SIGTERM stops it with exit 0; /healthz
// follows Redis when aggregate reports are on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/milters/dmarc/mxguard-dmarc";

std::pair<int, std::string> check(const TempDir& dir, const std::string& conf) {
  write_file(dir / "dmarc.conf", conf);
  std::string out;
  int rc = run_command({kBinary, "--check-config", "-c", (dir / "dmarc.conf").string()}, &out);
  return {rc, out};
}

TEST(DmarcDaemonTest, ConfigurationErrorsNameTheirPlace) {
  TempDir dir;
  auto [rc, out] = check(dir, "# comment\nquarantine-action = drop\n");
  EXPECT_EQ(rc, 78);
  EXPECT_THAT(out, HasSubstr("dmarc.conf:2"));
  EXPECT_THAT(out, HasSubstr("hold|header|accept"));
  std::tie(rc, out) = check(dir, "public-suffix-list = /nonexistent/psl.dafsa\n");
  EXPECT_EQ(rc, 78);
  EXPECT_THAT(out, HasSubstr("dmarc.conf:1"));
  EXPECT_THAT(out, HasSubstr("/nonexistent/psl.dafsa"));
  std::tie(rc, out) = check(dir, "trusted-networks = 10.0.0.0/33\n");
  EXPECT_EQ(rc, 78);
  std::tie(rc, out) = check(dir, "never-reject-domains = not a domain!\n");
  EXPECT_EQ(rc, 78);
  std::tie(rc, out) = check(dir, "quarantine-header = NoColon\n");
  EXPECT_EQ(rc, 78);
  std::tie(rc, out) = check(dir, "unknown-option = 1\n");
  EXPECT_EQ(rc, 78);
  EXPECT_THAT(out, HasSubstr("dmarc.conf:1"));
  std::tie(rc, out) =
      check(dir, "quarantine-action = header\nquarantine-header = X-Spam-Flag: YES\n");
  EXPECT_EQ(rc, 0) << out;
}

TEST(DmarcDaemonTest, ReloadMetricsAndStop) {
  TempDir dir;
  DnsServer dns(
      "$ORIGIN test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
      "_dmarc.reject IN TXT \"v=DMARC1; p=reject\"\n");
  int port = free_tcp_port(), metrics = free_tcp_port();
  std::string base = "listen = inet:127.0.0.1:" + std::to_string(port) +
                     "\nmetrics-listen = inet:127.0.0.1:" + std::to_string(metrics) +
                     "\ndns-servers = " + dns.server_spec() +
                     "\naggregate-reports = no\ntrusted-networks = 127.0.0.1/32\n";
  write_file(dir / "dmarc.conf", base);
  Process p(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir / "dmarc.conf").string()},
      dir / "dmarc.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port, std::chrono::seconds(10))) << p.log();
  const std::string script = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "mail.example", "127.0.0.2") ~= nil then error("conninfo") end
if mt.helo(conn, "mail.example") ~= nil then error("helo") end
if mt.mailfrom(conn, "<x@elsewhere.test>") ~= nil then error("mailfrom") end
mt.header(conn, "From", "ceo@reject.test")
mt.eoh(conn)
mt.eom(conn)
mt.echo("REPLY=" .. tostring(mt.getreply(conn)))
mt.disconnect(conn)
)";
  auto socket = "inet:" + std::to_string(port) + "@127.0.0.1";
  auto r = run_miltertest(script, socket);
  EXPECT_THAT(r.output, HasSubstr("REPLY=121"));  // SMFIR_REPLYCODE: 550
  // A broken file on reload: logged, the running configuration (enforcing) stays.
  write_file(dir / "dmarc.conf", base + "enforce = maybe\n");
  ::kill(p.pid(), SIGUSR1);
  for (int i = 0; i < 50 && p.log().find("reload failed") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(p.log(), HasSubstr("reload failed"));
  r = run_miltertest(script, socket);
  EXPECT_THAT(r.output, HasSubstr("REPLY=121"));
  // A good file on reload: monitor mode now.
  write_file(dir / "dmarc.conf", base + "enforce = no\n");
  ::kill(p.pid(), SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  r = run_miltertest(script, socket);
  EXPECT_THAT(r.output, HasSubstr("REPLY=97"));  // SMFIR_ACCEPT
  std::string page = http_get_metrics(metrics);
  EXPECT_THAT(page, HasSubstr("mxguard_dmarc_results_total{result=\"fail\"} 3"));
  EXPECT_THAT(page, HasSubstr("mxguard_dmarc_actions_total{action=\"reject\"} 2"));
  EXPECT_THAT(p.log(), HasSubstr("NOQUEUE: dmarc=fail action=reject from=reject.test"));
  int status = p.stop(SIGTERM, std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << p.log();
}

// Issue 20: with aggregate reports on, Redis holds their data: /healthz is 503 naming Redis
// while it is stopped (mail itself still flows), 200 while it answers.
TEST(DmarcDaemonTest, HealthzFollowsRedisWhenReportsAreOn) {
  TempDir dir;
  RedisServer redis;
  int port = free_tcp_port(), metrics = free_tcp_port();
  write_file(dir / "dmarc.conf",
             "listen = inet:127.0.0.1:" + std::to_string(port) +
                 "\nmetrics-listen = inet:127.0.0.1:" + std::to_string(metrics) +
                 "\nredis-url = " + redis.url() + "\naggregate-reports = yes\n");
  Process p(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir / "dmarc.conf").string()},
      dir / "dmarc.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port, std::chrono::seconds(10))) << p.log();
  std::string h = wait_for_http_status(metrics, "/healthz", 200, std::chrono::seconds(5));
  EXPECT_THAT(h, HasSubstr("HTTP/1.0 200 OK\r\n")) << p.log();
  redis.stop();
  h = wait_for_http_status(metrics, "/healthz", 503, std::chrono::seconds(10));
  EXPECT_THAT(h, HasSubstr("HTTP/1.0 503 Service Unavailable\r\n")) << p.log();
  EXPECT_THAT(h, HasSubstr("\r\n\r\nredis: "));
  EXPECT_THAT(h, HasSubstr(redis.url()));
}

}  // namespace
}  // namespace mxguard::testing
