// The mxguard-av binary driven by miltertest(8) against a private clamd: clean mail is
// accepted with X-Virus-Scanned/X-Virus-Status, EICAR rejected with 550 5.7.1 and the virus
// name, forged incoming X-Virus-* headers replaced, skips (network, SASL, allow-lists), the
// --on-* actions, clamd down → 451, SIGUSR1 reload, metrics, /healthz and configuration errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/fixtures/clamd_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/milters/av/mxguard-av";

struct Mail {
  std::string client = "192.0.2.7";
  std::string auth;
  std::string from = "<alice@example.org>";
  std::vector<std::string> rcpts = {"<bob@example.net>"};
  std::vector<std::pair<std::string, std::string>> headers = {
      {"From", "alice@example.org"}, {"To", "bob@example.net"}, {"Subject", "test"}};
  std::string body = "Hello Bob.\r\n";
};

// Lua long strings need no escaping as long as they do not contain "]==]".
std::string lua_str(const std::string& s) { return "[==[" + s + "]==]"; }

std::string script(const Mail& m) {
  std::string s =
      "conn = mt.connect(\"${SOCKET}\", 20, 0.1)\n"
      "if conn == nil then error(\"connect failed\") end\n"
      "if mt.conninfo(conn, \"client.example\", \"" +
      m.client +
      "\") ~= nil then error(\"conninfo\") end\n"
      "mt.macro(conn, SMFIC_MAIL, \"i\", \"4Xk2Qz1abc\", \"{auth_authen}\", \"" +
      m.auth +
      "\")\n"
      "if mt.mailfrom(conn, \"" +
      m.from + "\") ~= nil then error(\"mail\") end\n";
  for (const auto& r : m.rcpts) {
    s += "if mt.rcptto(conn, \"" + r + "\") ~= nil then error(\"rcpt\") end\n";
  }
  for (const auto& [n, v] : m.headers) {
    s += "if mt.header(conn, \"" + n + "\", " + lua_str(v) + ") ~= nil then error(\"hdr\") end\n";
  }
  // No mt.eoh(): mxguard-av negotiates SMFIP_NOEOH, and miltertest refuses to send it then.
  // In pieces, as an MTA sends a big body.
  for (std::size_t i = 0; i < m.body.size(); i += 60000) {
    s += "mt.bodystring(conn, " + lua_str(m.body.substr(i, 60000)) + ")\n";
  }
  s += R"(mt.eom(conn)
local r = mt.getreply(conn)
if r == SMFIR_ACCEPT then mt.echo("REPLY=accept")
elseif r == SMFIR_REPLYCODE then mt.echo("REPLY=replycode")
elseif r == SMFIR_TEMPFAIL then mt.echo("REPLY=tempfail")
elseif r == SMFIR_DISCARD then mt.echo("REPLY=discard")
elseif r == SMFIR_REJECT then mt.echo("REPLY=reject")
else mt.echo("REPLY=other " .. tostring(r)) end
for _, h in ipairs({"X-Virus-Scanned", "X-Virus-Status"}) do
  local v = mt.getheader(conn, h, 0)
  if v ~= nil then mt.echo("ADDED " .. h .. "<<" .. v .. ">>") end
  if mt.eom_check(conn, MT_HDRDELETE, h) or mt.eom_check(conn, MT_HDRCHANGE, h) then
    mt.echo("REMOVED " .. h)
  end
end
if mt.eom_check(conn, MT_QUARANTINE) then mt.echo("QUARANTINED") end
mt.disconnect(conn)
)";
  return s;
}

class AvMilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { clamd_ = new ClamdServer(); }
  static void TearDownTestSuite() { delete clamd_; }

  // Starts mxguard-av with the common settings plus `extra` (config file lines).
  void start(const std::string& extra = "") {
    port_ = free_tcp_port();
    metrics_port_ = free_tcp_port();
    write_file(dir_ / "av.conf",
               "listen = inet:127.0.0.1:" + std::to_string(port_) +
                   "\nmetrics-listen = inet:127.0.0.1:" + std::to_string(metrics_port_) +
                   "\nclamd = " + clamd_->unix_spec() + "\nheader-host = mx.mxguard.test\n" +
                   extra);
    av_ = Process(
        {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
        dir_ / "av.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << av_.log();
  }

  std::string run(const Mail& m) {
    auto r = run_miltertest(script(m), "inet:" + std::to_string(port_) + "@127.0.0.1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }

  // The log is written asynchronously to the test: wait for a needle.
  bool log_has(const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      if (av_.log().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << "--- mxguard-av log:\n" << av_.log();
  }

  static ClamdServer* clamd_;
  TempDir dir_;
  int port_ = 0, metrics_port_ = 0;
  Process av_;
};
ClamdServer* AvMilterTest::clamd_ = nullptr;

TEST_F(AvMilterTest, CleanMailIsAcceptedWithBothHeaders) {
  start();
  std::string out = run(Mail{});
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Status<<clean>>"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Scanned<<mxguard-av "));
  EXPECT_THAT(out, HasSubstr(" on mx.mxguard.test>>"));
  EXPECT_THAT(out, Not(HasSubstr("REMOVED")));
  EXPECT_TRUE(
      log_has("4Xk2Qz1abc: verdict=clean action=accept virus=- clamd=" + clamd_->unix_spec()));
  EXPECT_THAT(av_.log(), HasSubstr("scan_time="));
}

TEST_F(AvMilterTest, EicarIsRejectedWith550AndTheVirusName) {
  start();
  Mail m;
  m.body = "Here it comes:\r\n" + eicar() + "\r\n";
  std::string out = run(m);
  // miltertest does not show the reply text: the decision line and the Postfix tests do.
  EXPECT_THAT(out, HasSubstr("REPLY=replycode"));
  EXPECT_THAT(out, Not(HasSubstr("ADDED")));
  EXPECT_TRUE(log_has("4Xk2Qz1abc: verdict=infected action=reject virus=" + kEicarSignature));
}

TEST_F(AvMilterTest, EicarInABase64AttachmentIsFound) {
  start();
  std::string b64;
  run_command({"/bin/sh", "-c", "printf '%s' '" + eicar() + "' | base64"}, &b64);
  Mail m;
  m.headers = {{"From", "a@example.org"},
               {"MIME-Version", "1.0"},
               {"Content-Type", "multipart/mixed; boundary=\"b1\""}};
  m.body =
      "--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n--b1\r\n"
      "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment; filename=\"t.com\"\r\n\r\n" +
      b64 + "\r\n--b1--\r\n";
  EXPECT_THAT(run(m), HasSubstr("REPLY=replycode"));
  EXPECT_TRUE(log_has("verdict=infected action=reject virus=" + kEicarSignature));
}

TEST_F(AvMilterTest, ZippedTestFileAttachmentIsFound) {
  if (!have_clamav_testfiles()) GTEST_SKIP() << "clamav-testfiles not installed";
  start();
  std::string b64;
  run_command({"base64", kTestFilesDir + "/clam.zip"}, &b64);
  Mail m;
  m.headers = {{"From", "a@example.org"},
               {"MIME-Version", "1.0"},
               {"Content-Type", "multipart/mixed; boundary=\"b1\""}};
  m.body =
      "--b1\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment; filename=\"invoice.zip\"\r\n\r\n" +
      b64 + "\r\n--b1--\r\n";
  EXPECT_THAT(run(m), HasSubstr("REPLY=replycode"));
  EXPECT_TRUE(log_has("verdict=infected action=reject virus=" + kClamExeSignature));
}

TEST_F(AvMilterTest, ForgedIncomingHeadersAreReplaced) {
  start();
  Mail m;
  m.headers.push_back({"X-Virus-Status", "clean"});
  m.headers.push_back({"X-Virus-Scanned", "by a friend"});
  m.headers.push_back({"x-virus-status", "clean too"});
  m.body = "nothing to see\r\n";
  std::string out = run(m);
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, HasSubstr("REMOVED X-Virus-Status"));
  EXPECT_THAT(out, HasSubstr("REMOVED X-Virus-Scanned"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Status<<clean>>"));
  EXPECT_TRUE(log_has("incoming_headers_removed=3"));
}

TEST_F(AvMilterTest, InfectedActionsQuarantineDiscardAccept) {
  Mail m;
  m.body = eicar() + "\r\n";
  start("on-infected = quarantine\n");
  std::string out = run(m);
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, HasSubstr("QUARANTINED"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Status<<infected (" + kEicarSignature + ")>>"));
  av_.stop();
  start("on-infected = discard\n");
  EXPECT_THAT(run(m), HasSubstr("REPLY=discard"));
  av_.stop();
  start("on-infected = accept\nadd-header = no\n");
  out = run(m);
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, Not(HasSubstr("ADDED")));
}

TEST_F(AvMilterTest, SkippedMailIsNotScannedButSaysSo) {
  start(
      "skip-authenticated = yes\nskip-networks = 10.0.0.0/8\n"
      "allow-senders = trusted.test\nallow-recipients = postmaster@example.net\n");
  Mail m;
  m.body = eicar() + "\r\n";  // would be rejected if it were scanned
  Mail net = m;
  net.client = "10.1.2.3";
  EXPECT_THAT(run(net), HasSubstr("ADDED X-Virus-Status<<unscanned (network)>>"));
  Mail sasl = m;
  sasl.auth = "alice";
  EXPECT_THAT(run(sasl), HasSubstr("ADDED X-Virus-Status<<unscanned (authenticated)>>"));
  Mail sender = m;
  sender.from = "<x@trusted.test>";
  EXPECT_THAT(run(sender), HasSubstr("ADDED X-Virus-Status<<unscanned (allow-list)>>"));
  Mail rcpt = m;
  rcpt.rcpts = {"<postmaster@example.net>"};
  EXPECT_THAT(run(rcpt), HasSubstr("REPLY=accept"));
  // One recipient not on the list: scanned.
  rcpt.rcpts = {"<postmaster@example.net>", "<bob@example.net>"};
  EXPECT_THAT(run(rcpt), HasSubstr("REPLY=replycode"));
  EXPECT_TRUE(log_has("verdict=infected action=reject"));
  EXPECT_TRUE(log_has("verdict=skipped action=accept"));
  EXPECT_TRUE(log_has("reason=network"));
}

TEST_F(AvMilterTest, ClamdDownIsATempfailOrAnAcceptIfConfigured) {
  port_ = free_tcp_port();
  std::string dead = "unix:" + (dir_ / "no-clamd.sock").string();
  write_file(dir_ / "av.conf",
             "listen = inet:127.0.0.1:" + std::to_string(port_) + "\nclamd = " + dead + "\n");
  av_ = Process(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
      dir_ / "av.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << av_.log();
  std::string out = run(Mail{});
  EXPECT_THAT(out, HasSubstr("REPLY=replycode"));
  EXPECT_TRUE(log_has("error: 4Xk2Qz1abc: verdict=error action=tempfail"));
  EXPECT_THAT(av_.log(), HasSubstr("reason=\"no clamd reachable"));
  av_.stop();
  write_file(dir_ / "av.conf", "listen = inet:127.0.0.1:" + std::to_string(port_) +
                                   "\nclamd = " + dead + "\non-error = accept\n");
  av_ = Process(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
      dir_ / "av2.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << av_.log();
  out = run(Mail{});
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Status<<unscanned (error)>>"));
}

TEST_F(AvMilterTest, OversizeMessagesPassUnscanned) {
  start("max-size = 64k\nchunk-size = 16k\n");
  Mail m;
  m.body = std::string(100000, 'a') + "\r\n" + eicar() + "\r\n";
  std::string out = run(m);
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Status<<unscanned (oversize)>>"));
  EXPECT_TRUE(log_has("verdict=oversize action=accept"));
  av_.stop();
  start("max-size = 64k\nchunk-size = 16k\non-oversize = reject\n");
  EXPECT_THAT(run(m), HasSubstr("REPLY=replycode"));
  EXPECT_TRUE(log_has("verdict=oversize action=reject"));
}

// clamd's StreamMaxLength below max-size: clamd refuses the stream, and a retry could never
// pass, so the message takes on-oversize (accept, unscanned) instead of a tempfail loop.
TEST_F(AvMilterTest, ClamdStreamLimitTakesOnOversizeNotATempfailLoop) {
  ClamdServer small({.stream_max_length = "1M", .tcp = false});
  port_ = free_tcp_port();
  write_file(dir_ / "av.conf", "listen = inet:127.0.0.1:" + std::to_string(port_) +
                                   "\nclamd = " + small.unix_spec() + "\n");
  av_ = Process(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
      dir_ / "av.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << av_.log();
  Mail m;
  m.body = std::string(3 * 1024 * 1024, 'b') + "\r\n";
  std::string out = run(m);
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, HasSubstr("ADDED X-Virus-Status<<unscanned (oversize)>>"));
  EXPECT_TRUE(log_has("verdict=oversize action=accept"));
  EXPECT_THAT(av_.log(), HasSubstr("reason=clamd-limit"));
  EXPECT_THAT(av_.log(), HasSubstr("StreamMaxLength is below max-size"));
  // Small mail still goes to the same clamd and is scanned.
  Mail eicar_mail;
  eicar_mail.body = eicar() + "\r\n";
  EXPECT_THAT(run(eicar_mail), HasSubstr("REPLY=replycode"));
  EXPECT_TRUE(log_has("verdict=infected"));
}

TEST_F(AvMilterTest, ReloadOnSigusr1AppliesNewActions) {
  start();
  Mail m;
  m.body = eicar() + "\r\n";
  EXPECT_THAT(run(m), HasSubstr("REPLY=replycode"));
  std::string conf = read_file(dir_ / "av.conf");
  write_file(dir_ / "av.conf", conf + "on-infected = discard\n");
  ::kill(av_.pid(), SIGUSR1);
  ASSERT_TRUE(log_has("reload: done"));
  EXPECT_THAT(run(m), HasSubstr("REPLY=discard"));
  // A broken file keeps the running configuration.
  write_file(dir_ / "av.conf", conf + "on-infected = explode\n");
  ::kill(av_.pid(), SIGUSR1);
  ASSERT_TRUE(log_has("reload failed"));
  EXPECT_THAT(run(m), HasSubstr("REPLY=discard"));
}

TEST_F(AvMilterTest, MetricsCountVerdictsAndErrors) {
  start();
  run(Mail{});
  Mail m;
  m.body = eicar() + "\r\n";
  run(m);
  std::string metrics = http_get_metrics(metrics_port_);
  EXPECT_THAT(metrics, HasSubstr("mxguard_av_messages_total{verdict=\"clean\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("mxguard_av_messages_total{verdict=\"infected\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("mxguard_av_actions_total{action=\"reject\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("mxguard_av_scan_seconds_count 2"));
  EXPECT_THAT(metrics, HasSubstr("mxguard_av_clamd_up{server=\"" + clamd_->unix_spec() + "\"} 1"));
}

// Issue 20: /healthz is 200 while clamd answers its zPING and 503 naming clamd once no
// configured clamd does (noticed by the health thread, without mail), 200 again when it is back.
TEST_F(AvMilterTest, HealthzFollowsClamd) {
  ClamdServer own;
  port_ = free_tcp_port();
  metrics_port_ = free_tcp_port();
  write_file(dir_ / "av.conf",
             "listen = inet:127.0.0.1:" + std::to_string(port_) +
                 "\nmetrics-listen = inet:127.0.0.1:" + std::to_string(metrics_port_) +
                 "\nclamd = " + own.unix_spec() + "\nhealth-interval = 200ms\n");
  av_ = Process(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
      dir_ / "av.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << av_.log();
  std::string h = wait_for_http_status(metrics_port_, "/healthz", 200, std::chrono::seconds(5));
  EXPECT_THAT(h, HasSubstr("HTTP/1.0 200 OK\r\n"));
  own.stop();
  h = wait_for_http_status(metrics_port_, "/healthz", 503, std::chrono::seconds(5));
  EXPECT_THAT(h, HasSubstr("HTTP/1.0 503 Service Unavailable\r\n"));
  EXPECT_THAT(h, HasSubstr("\r\n\r\nclamd: every clamd is down: " + own.unix_spec() + " ("));
  own.start();
  h = wait_for_http_status(metrics_port_, "/healthz", 200, std::chrono::seconds(10));
  EXPECT_THAT(h, HasSubstr("HTTP/1.0 200 OK\r\n"));
}

// A message smaller than one chunk opens no clamd connection until end of message (so a slow
// client holds no clamd thread); a larger one streams while the body arrives.
TEST_F(AvMilterTest, ClamdConnectionOpensAtTheFirstFullChunkOrAtEndOfMessage) {
  FakeClamd fake(FakeClamd::Mode::kGarbage, "stream: OK\0");
  port_ = free_tcp_port();
  write_file(dir_ / "av.conf", "listen = inet:127.0.0.1:" + std::to_string(port_) + "\nclamd = " +
                                   fake.inet_spec() + "\nchunk-size = 16k\nhealth-interval = 1h\n");
  av_ = Process(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
      dir_ / "av.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << av_.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the first health round
  for (std::size_t body_size : {std::size_t{1000}, std::size_t{40000}}) {
    int before = fake.connections();
    std::string s = script(Mail{.body = std::string(body_size, 'x') + "\r\n"});
    s.insert(s.find("mt.eom(conn)"), "mt.sleep(1)\n");  // a client pausing before the end
    MiltertestResult r;
    std::thread t([&] { r = run_miltertest(s, "inet:" + std::to_string(port_) + "@127.0.0.1"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    int during = fake.connections() - before;
    t.join();
    EXPECT_EQ(during, body_size < 16384 ? 0 : 1) << body_size;
    EXPECT_EQ(fake.connections() - before, 1) << body_size;
    EXPECT_THAT(r.output, HasSubstr("ADDED X-Virus-Status<<clean>>")) << r.output;
  }
}

TEST_F(AvMilterTest, ConfigurationErrorsExit78) {
  write_file(dir_ / "bad.conf", "clamd = unix:/x.sock\non-infected = bounce\n");
  std::string out;
  EXPECT_EQ(run_command({kBinary, "--check-config", "-c", (dir_ / "bad.conf").string()}, &out), 78);
  EXPECT_THAT(out, HasSubstr("bad.conf:2"));
  EXPECT_THAT(out, HasSubstr("on-infected"));
  write_file(dir_ / "good.conf", "clamd = unix:/x.sock, inet:127.0.0.1:3310\n");
  EXPECT_EQ(run_command({kBinary, "--check-config", "-c", (dir_ / "good.conf").string()}, &out), 0)
      << out;
}

}  // namespace
}  // namespace mxguard::testing
