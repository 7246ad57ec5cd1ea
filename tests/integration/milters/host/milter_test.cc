// mxguard-milter (the binary, filters = dkim, dmarc, av) driven by miltertest against a private
// DNS server and clamd: one filter's trouble takes that filter's own outcome and no other's.
// clamd unreachable with av's on-error = tempfail → 451 4.3.0 from the av filter, no header
// written; with on-error = accept → accepted, and the message still carries the dkim and dmarc
// results in the chain's one Authentication-Results header (forged ones deleted). An internal
// error in the av filter (an exception in its callback) takes av's on-internal-error, not the
// chain's, with a log line and a metric naming the filter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "tests/fixtures/clamd_server.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/stack.h"

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kBin = MXGUARD_BINARY_DIR;
const std::string kTool = std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py";

using Headers = std::vector<std::pair<std::string, std::string>>;

// A message as the MTA hands it to a milter that asked for the leading space: header fields
// (name, value with its leading space, folded lines joined by LF as Postfix sends them) and the
// body with CRLF line ends.
struct Message {
  Headers headers;
  std::string body;
};

Message split(const std::string& raw) {
  Message m;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    auto eol = raw.find("\r\n", pos);
    if (eol == pos) {
      m.body = raw.substr(pos + 2);
      break;
    }
    std::string line = raw.substr(pos, eol - pos);
    if ((line[0] == ' ' || line[0] == '\t') && !m.headers.empty()) {
      m.headers.back().second += "\n" + line;
    } else {
      auto colon = line.find(':');
      m.headers.push_back({line.substr(0, colon), line.substr(colon + 1)});
    }
    pos = eol + 2;
  }
  return m;
}

// An SMTP reply a filter may ask for: code, enhanced code, text.
struct Reply {
  std::string code, xcode, text;
};
const Reply kScannerDown{"451", "4.3.0", "Virus scanner unavailable, try again later"};
const Reply kInternalReject{"550", "5.7.0", "Temporary internal error, try again later"};
const Reply kInternalTempfail{"451", "4.3.0", "Temporary internal error, try again later"};

// The partner's mail from 192.0.2.7 (its SPF-authorised address) through the chain. Echoes the
// reply, which of `replies` the filter asked for (miltertest compares the whole reply line), and
// the headers the chain added or deleted.
std::string script(const Message& m, const std::vector<Reply>& replies) {
  std::string s = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "mail.partner.test", "192.0.2.7") ~= nil then error("conninfo") end
if mt.helo(conn, "mail.partner.test") ~= nil then error("helo") end
mt.macro(conn, SMFIC_MAIL, "i", "4Xk2Qz1abc")
if mt.mailfrom(conn, "<news@partner.test>") ~= nil then error("mail") end
if mt.rcptto(conn, "<carol@mxguard.test>") ~= nil then error("rcpt") end
)";
  for (const auto& [n, v] : m.headers) {
    s += "if mt.header(conn, " + lua_quote(n) + ", " + lua_quote(v) +
         ") ~= nil then error(\"header\") end\n";
  }
  s += "if mt.eoh(conn) ~= nil then error(\"eoh\") end\n";
  s += "mt.bodystring(conn, " + lua_quote(m.body) + ")\n";
  s += R"(mt.eom(conn)
local r = mt.getreply(conn)
if r == SMFIR_ACCEPT then mt.echo("REPLY=accept")
elseif r == SMFIR_REPLYCODE then mt.echo("REPLY=replycode")
elseif r == SMFIR_TEMPFAIL then mt.echo("REPLY=tempfail")
elseif r == SMFIR_REJECT then mt.echo("REPLY=reject")
else mt.echo("REPLY=other " .. tostring(r)) end
)";
  for (const auto& r : replies) {
    s += "if mt.eom_check(conn, MT_SMTPREPLY, " + lua_quote(r.code) + ", " + lua_quote(r.xcode) +
         ", " + lua_quote(r.text) + ") then mt.echo(" +
         lua_quote("SMTP=" + r.code + " " + r.xcode + " " + r.text) + ") end\n";
  }
  s += R"(for i = 0, 3 do
  local a = mt.getheader(conn, "Authentication-Results", i)
  if a ~= nil then mt.echo("AR" .. i .. "<<" .. a .. ">>") end
end
local v = mt.getheader(conn, "X-Virus-Status", 0)
if v ~= nil then mt.echo("X-Virus-Status<<" .. v .. ">>") end
if mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results") or
   mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") then
  mt.echo("AR-DELETED")
end
mt.disconnect(conn)
)";
  return s;
}

class HostChainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string ours = keygen(dir_->path(), "mxguard.test", "demo");
    std::string partner = keygen(dir_->path(), "partner.test", "p1");
    dns_ = new DnsServer(
        "$ORIGIN test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
        "mxguard IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n"
        "_dmarc.mxguard IN TXT \"v=DMARC1; p=reject\"\n" +
        txt("demo._domainkey.mxguard", ours) +
        "partner IN TXT \"v=spf1 ip4:192.0.2.7 -all\"\n"
        "_dmarc.partner IN TXT \"v=DMARC1; p=reject\"\n" +
        txt("p1._domainkey.partner", partner));
    clamd_ = new ClamdServer();
    write_file(*dir_ / "hop-secret", "host-test-hop-secret-0123456789abcdef\n");
  }
  static void TearDownTestSuite() {
    delete clamd_;
    delete dns_;
    delete dir_;
  }

  // Writes each filter's own file (av's with `av_extra` lines, dmarc's with `dmarc_reports`)
  // and milter.conf, then starts mxguard-milter on them.
  void start(const std::string& av_extra, const std::string& milter_extra = "",
             const std::string& dmarc_reports = "aggregate-reports = no\n") {
    const std::string dns = "dns-servers = " + dns_->server_spec() + "\ndns-timeout = 2s\n";
    const std::string common =
        "authserv-id = mx.mxguard.test\nhop-secret-file = " + (*dir_ / "hop-secret").string() +
        "\n";
    write_file(own_ / "dkim.conf", dns + common + "domain = mxguard.test\nselector = demo\n" +
                                       "key-file = " + (*dir_ / "demo.private").string() +
                                       "\ninternal-hosts = 127.0.0.1\n");
    write_file(own_ / "dmarc.conf",
               dns + common + "trusted-networks = 127.0.0.1/32\n" + dmarc_reports);
    write_file(own_ / "av.conf", "header-host = mx.mxguard.test\n" + av_extra);
    port_ = free_tcp_port();
    metrics_port_ = free_tcp_port();
    write_file(own_ / "milter.conf",
               "listen = inet:127.0.0.1:" + std::to_string(port_) +
                   "\nmetrics-listen = inet:127.0.0.1:" + std::to_string(metrics_port_) +
                   "\nfilters = dkim, dmarc, av\n"
                   "dkim-config = " +
                   (own_ / "dkim.conf").string() +
                   "\ndmarc-config = " + (own_ / "dmarc.conf").string() +
                   "\nav-config = " + (own_ / "av.conf").string() + "\n" + milter_extra);
    milter_ = Process({kBin + "/milters/host/mxguard-milter", "--foreground", "--log-target",
                       "stderr", "-c", (own_ / "milter.conf").string()},
                      own_ / "milter.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(10))) << milter_.log();
  }

  std::string run(const Message& m) {
    auto r = run_miltertest(script(m, {kScannerDown, kInternalReject, kInternalTempfail}),
                            "inet:" + std::to_string(port_) + "@127.0.0.1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }

  // The log is written asynchronously to the test: wait for a needle.
  bool log_has(const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      if (milter_.log().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // The partner's newsletter, signed with its key by python3-dkim, with a forged A-R of ours
  // on top and the partner's own A-R below it.
  static Message signed_newsletter() {
    TempDir d;
    write_file(d / "msg.eml",
               "Authentication-Results: mx.mxguard.test; dkim=pass header.d=bank.test\r\n"
               "Authentication-Results: mx.partner.test; spf=pass smtp.mailfrom=partner.test\r\n"
               "From: Partner News <news@partner.test>\r\nTo: carol@mxguard.test\r\n"
               "Subject: chain newsletter\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
               "Message-ID: <chain-1@partner.test>\r\n\r\nHello.\r\n");
    std::string out;
    if (run_command({"/usr/bin/python3", kTool, "sign", (d / "msg.eml").string(),
                     (*dir_ / "p1.private").string(), "p1", "partner.test", "rsa"},
                    &out) != 0) {
      throw std::runtime_error("dkim_tool sign failed: " + out);
    }
    return split(out);
  }

  static Message eicar_message() {
    return split(
        "From: Partner News <news@partner.test>\r\nTo: carol@mxguard.test\r\n"
        "Subject: chain eicar\r\n\r\nHere it comes:\r\n" +
        eicar() + "\r\n");
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << "--- mxguard-milter log:\n" << milter_.log();
  }

  static TempDir* dir_;
  static DnsServer* dns_;
  static ClamdServer* clamd_;
  TempDir own_;  // this test's files and log
  int port_ = 0, metrics_port_ = 0;
  Process milter_;  // after own_: stopped before its directory goes
};
TempDir* HostChainTest::dir_ = nullptr;
DnsServer* HostChainTest::dns_ = nullptr;
ClamdServer* HostChainTest::clamd_ = nullptr;

TEST_F(HostChainTest, ClamdUnreachableTempfailsAsTheAvFilterSays) {
  start("clamd = unix:" + (*dir_ / "no-clamd.sock").string() + "\non-error = tempfail\n");
  std::string out = run(signed_newsletter());
  EXPECT_THAT(out, HasSubstr("REPLY=replycode"));
  EXPECT_THAT(out, HasSubstr("SMTP=451 4.3.0 Virus scanner unavailable, try again later"));
  EXPECT_THAT(out, Not(HasSubstr("internal error")));
  EXPECT_THAT(out, Not(HasSubstr("AR0<<"))) << "no results on a message that is not taken";
  EXPECT_TRUE(log_has("4Xk2Qz1abc: verdict=error action=tempfail"));
  // dkim and dmarc did their part; only av's outcome decided.
  EXPECT_THAT(milter_.log(), HasSubstr("4Xk2Qz1abc: mode=verify dkim=pass/partner.test"));
  EXPECT_THAT(milter_.log(), HasSubstr("4Xk2Qz1abc: dmarc=pass action=accept"));
  EXPECT_THAT(milter_.log(), Not(HasSubstr("filter=")));  // no internal error anywhere
}

TEST_F(HostChainTest, ClamdUnreachableWithOnErrorAcceptStillGetsDkimAndDmarcResults) {
  start("clamd = unix:" + (*dir_ / "no-clamd.sock").string() + "\non-error = accept\n");
  std::string out = run(signed_newsletter());
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  EXPECT_THAT(out, Not(HasSubstr("SMTP=")));
  std::string ar = between(out, "AR0<<", ">>");
  EXPECT_TRUE(ar.starts_with(" mx.mxguard.test;")) << out;
  EXPECT_THAT(ar, HasSubstr("dkim=pass header.d=partner.test"));
  // The dkim filter's ARC result travels through MessageResults like its DKIM results.
  EXPECT_THAT(ar, HasSubstr("arc=none smtp.remote-ip="));
  EXPECT_THAT(ar, HasSubstr("spf=pass smtp.mailfrom=news@partner.test"));
  EXPECT_THAT(ar, HasSubstr("dmarc=pass (p=reject dis=none) header.from=partner.test"));
  EXPECT_THAT(out, Not(HasSubstr("AR1<<"))) << "one Authentication-Results header";
  EXPECT_THAT(out, HasSubstr("AR-DELETED")) << "the forged one";
  EXPECT_THAT(out, HasSubstr("X-Virus-Status<< unscanned (error)>>"));
  EXPECT_TRUE(log_has("4Xk2Qz1abc: verdict=error action=accept"));
  EXPECT_THAT(milter_.log(), HasSubstr("forged_ar_removed=1"));
}

// An exception inside the av filter: reject-text passes av's checks (printable, 400 characters)
// but "%v" two hundred times expands to 5,800 characters with the virus name, more than
// libmilter's smfi_setreply takes (980), so av's reject throws at end of message.
const std::string kHugeReplyText = "reject-text = " + [] {
  std::string s;
  for (int i = 0; i < 200; ++i) s += "%v";
  return s;
}() + "\n";

TEST_F(HostChainTest, InternalErrorInAvTakesAvsOwnOnInternalErrorNotTheChains) {
  // The chain's own outcome is tempfail; av's is reject.
  start("clamd = " + clamd_->unix_spec() + "\n" + kHugeReplyText + "on-internal-error = reject\n",
        "on-internal-error = tempfail\n");
  std::string out = run(eicar_message());
  EXPECT_THAT(out, HasSubstr("REPLY=replycode"));
  EXPECT_THAT(out, HasSubstr("SMTP=550 5.7.0 Temporary internal error, try again later"));
  EXPECT_THAT(out, Not(HasSubstr("SMTP=451")));  // not the chain's tempfail
  EXPECT_TRUE(log_has("4Xk2Qz1abc: filter=mxguard-av stage=eom action=reject"));
  EXPECT_THAT(milter_.log(), HasSubstr("setting the SMTP reply failed"));
  std::string metrics = http_get_metrics(metrics_port_);
  EXPECT_THAT(metrics, HasSubstr("mxguard_milter_filter_errors_total{filter=\"mxguard-av\","
                                 "stage=\"eom\"} 1"));
}

TEST_F(HostChainTest, InternalErrorInAvWithAcceptLeavesTheOtherFiltersResults) {
  start("clamd = " + clamd_->unix_spec() + "\n" + kHugeReplyText + "on-internal-error = accept\n");
  std::string out = run(eicar_message());
  // av's failure outcome is accept: the message goes on without av, as mxguard-av alone would
  // let it through; dkim and dmarc results are written all the same.
  EXPECT_THAT(out, HasSubstr("REPLY=accept"));
  std::string ar = between(out, "AR0<<", ">>");
  EXPECT_THAT(ar, HasSubstr("dkim=none"));
  EXPECT_THAT(ar, HasSubstr("dmarc=pass"));
  EXPECT_THAT(out, Not(HasSubstr("AR1<<")));
  EXPECT_TRUE(log_has("4Xk2Qz1abc: filter=mxguard-av stage=eom action=accept"));
}

// Issue 20: mxguard-milter's /healthz holds each filter's checks, as its own daemon would: dmarc's
// Redis (aggregate reports on) and av's clamd, one line each while they do not answer.
TEST_F(HostChainTest, HealthzHasEachFiltersChecks) {
  std::string dead_redis = "redis://127.0.0.1:" + std::to_string(free_tcp_port()) + "/0";
  start("clamd = unix:" + (*dir_ / "no-clamd.sock").string() + "\n", "",
        "aggregate-reports = yes\nredis-url = " + dead_redis + "\n");
  // Until serve() runs the answer is "serving: starting", and the av filter's health thread
  // marks the missing clamd down at its first zPING.
  std::string h;
  for (int i = 0; i < 50; ++i) {
    h = http_get(metrics_port_, "/healthz");
    if (h.find("\nclamd: ") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(h, HasSubstr("HTTP/1.0 503 Service Unavailable\r\n"));
  EXPECT_THAT(h, HasSubstr("\nredis: "));
  EXPECT_THAT(h, HasSubstr(dead_redis));
  EXPECT_THAT(h, HasSubstr("\nclamd: every clamd is down: unix:"));
  EXPECT_THAT(h, Not(HasSubstr("serving:")));
}

}  // namespace
}  // namespace mxguard::testing
