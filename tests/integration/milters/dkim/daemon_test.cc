// The mxguard-dkim binary: configuration errors are exit 78 with file:line (short keys,
// broken tables), and a SIGUSR1 reload with a broken table keeps the running keys in force.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-dkim";

class DkimDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out",
                           (dir_ / "ed.pem").string()}),
              0);
    ASSERT_EQ(run_command({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                           "rsa_keygen_bits:768", "-out", (dir_ / "short.pem").string()}),
              0);
    write_file(dir_ / "KeyTable", "ed example.test:ed:" + (dir_ / "ed.pem").string() + "\n");
    write_file(dir_ / "SigningTable", "*@example.test ed\n");
  }
  std::pair<int, std::string> check(const std::string& conf) {
    write_file(dir_ / "dkim.conf", conf);
    std::string out;
    int rc = run_command({kBinary, "--check-config", "-c", (dir_ / "dkim.conf").string()}, &out);
    return {rc, out};
  }
  TempDir dir_;
};

TEST_F(DkimDaemonTest, ConfigurationErrorsNameTheirPlace) {
  auto [rc, out] = check(
      "domain = example.test\nselector = s\nkey-file = " + (dir_ / "short.pem").string() + "\n");
  EXPECT_EQ(rc, 78);
  EXPECT_THAT(out, HasSubstr("768 bits refused"));
  EXPECT_THAT(out, HasSubstr("dkim.conf:3"));
  write_file(dir_ / "BadSigning", "*@example.test ed\n\n*@other.test missing\n");
  std::tie(rc, out) = check("key-table = " + (dir_ / "KeyTable").string() +
                            "\nsigning-table = refile:" + (dir_ / "BadSigning").string() + "\n");
  EXPECT_EQ(rc, 78);
  EXPECT_THAT(out, HasSubstr((dir_ / "BadSigning").string() + ":3: key name 'missing'"));
  std::tie(rc, out) = check("key-table = " + (dir_ / "KeyTable").string() +
                            "\nsigning-table = refile:" + (dir_ / "SigningTable").string() + "\n");
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = check("on-bad-signature = bounce\n");
  EXPECT_EQ(rc, 78);
}

TEST_F(DkimDaemonTest, BrokenTableOnReloadKeepsTheRunningKeys) {
  int port = free_tcp_port();
  std::string base = "listen = inet:127.0.0.1:" + std::to_string(port) +
                     "\nkey-table = " + (dir_ / "KeyTable").string() +
                     "\nsigning-table = refile:" + (dir_ / "SigningTable").string() + "\n";
  write_file(dir_ / "dkim.conf", base);
  Process p(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "dkim.conf").string()},
      dir_ / "dkim.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port, std::chrono::seconds(10))) << p.log();
  write_file(dir_ / "KeyTable", "ed example.test:ed:/nonexistent/key.pem\n");
  ::kill(p.pid(), SIGUSR1);
  for (int i = 0; i < 50 && p.log().find("reload failed") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(p.log(), HasSubstr("reload failed, keeping the running configuration"));
  EXPECT_THAT(p.log(), HasSubstr("/nonexistent/key.pem"));
  auto r = run_miltertest(R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "localhost", "127.0.0.1") ~= nil then error("conninfo") end
if mt.mailfrom(conn, "<a@example.test>") ~= nil then error("mailfrom") end
mt.header(conn, "From", " a@example.test")
mt.header(conn, "Subject", " still signed")
mt.eoh(conn)
mt.bodystring(conn, "x\r\n")
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_ACCEPT then error("not accepted") end
if not mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature") then error("not signed") end
mt.disconnect(conn)
)",
                          "inet:" + std::to_string(port) + "@127.0.0.1");
  EXPECT_EQ(r.exit_code, 0) << r.output << p.log();
  // libmilter's listener notices the stop within its 5 s poll interval.
  EXPECT_EQ(p.stop(SIGTERM, std::chrono::seconds(8)), 0) << p.log();
}

TEST_F(DkimDaemonTest, FailureActionsFollowTheOnOptions) {
  DnsServer dns(
      "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
      "bad._domainkey IN TXT \"v=DKIM1; k=ed25519; "
      "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n"
      "!timeout slow._domainkey.example.test.\n");
  int port = free_tcp_port();
  write_file(dir_ / "dkim.conf", "listen = inet:127.0.0.1:" + std::to_string(port) +
                                     "\ndns-servers = " + dns.server_spec() +
                                     "\ndns-timeout = 300ms\n"
                                     "authserv-id = mx.mxguard.test\n"
                                     "on-bad-signature = reject\n"
                                     "on-dns-error = tempfail\n"
                                     "on-key-not-found = quarantine\n");
  Process p(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "dkim.conf").string()},
      dir_ / "dkim.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port, std::chrono::seconds(10))) << p.log();
  auto send = [&](const std::string& selector, const std::string& qid, const std::string& expect) {
    auto r =
        run_miltertest(R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "remote", "192.0.2.9") ~= nil then error("conninfo") end
mt.macro(conn, SMFIC_MAIL, "i", ")" +
                           qid + R"(")
if mt.mailfrom(conn, "<a@example.test>") ~= nil then error("mailfrom") end
mt.header(conn, "DKIM-Signature", " v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test; s=)" +
                           selector +
                           R"(; h=from; bh=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=; b=AAAA")
mt.header(conn, "From", " a@example.test")
mt.eoh(conn)
mt.bodystring(conn, "x\r\n")
mt.eom(conn)
local r = mt.getreply(conn)
if r ~= )" + expect + R"( then error("unexpected reply " .. tostring(r)) end
if mt.eom_check(conn, MT_QUARANTINE) then mt.echo("QUARANTINED") end
mt.disconnect(conn)
)",
                       "inet:" + std::to_string(port) + "@127.0.0.1");
    EXPECT_EQ(r.exit_code, 0) << selector << ": " << r.output << p.log();
    return r.output;
  };
  send("bad", "QBAD", "SMFIR_REPLYCODE");
  send("slow", "QSLOW", "SMFIR_REPLYCODE");
  auto out = send("absent", "QABSENT", "SMFIR_ACCEPT");
  EXPECT_THAT(out, HasSubstr("QUARANTINED"));
  for (int i = 0; i < 20 && p.log().find("QABSENT") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string log = p.log();
  EXPECT_THAT(log, HasSubstr("QBAD: mode=verify dkim=fail/example.test ignored=0 action=reject"));
  EXPECT_THAT(
      log, HasSubstr("QSLOW: mode=verify dkim=temperror/example.test ignored=0 action=tempfail"));
  EXPECT_THAT(
      log,
      HasSubstr("QABSENT: mode=verify dkim=permerror/example.test ignored=0 action=quarantine"));
  EXPECT_EQ(p.stop(SIGTERM, std::chrono::seconds(8)), 0) << p.log();
}

}  // namespace
}  // namespace mxguard::testing
