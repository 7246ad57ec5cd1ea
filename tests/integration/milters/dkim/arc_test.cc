// ARC in mxguard-dkim through the real milter (miltertest) with keys from a real DNS server
// (tests/fixtures/dns_server): inbound chains sealed by python3-dkim give arc=pass with the
// sealers, oldest-pass and smtp.remote-ip in our Authentication-Results (the form
// mxguard-dmarc parses), a tampered one arc=fail, none arc=none, a key lookup timeout arc=fail;
// forwarded mail from an internal client gets an ARC set that python3-dkim's arc_verify
// accepts, fresh mail none (arc-seal = forwarded), and a chain we could not check because of
// DNS none either. Across daemons: the real mxguard-dmarc binary, given our sealed A-R header,
// lets a DMARC fail through when the chain's newest sealer is in trusted-arc-sealers, and
// rejects it otherwise.
#include <gtest/gtest.h>

#include <thread>

#include "common/authres/seal.h"
#include "milters/dkim/dkim_milter.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

using testing::between;
using testing::crlf;
using testing::TempDir;

const std::string kTool = std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py";
constexpr const char* kSecret = "arc-test-hop-secret-0123456789";

// A TXT record in zone-file strings of at most 255 bytes.
std::string txt(const std::string& record) {
  std::string out;
  for (std::size_t i = 0; i < record.size(); i += 200) out += " \"" + record.substr(i, 200) + "\"";
  return out;
}

struct Eml {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

Eml split_message(const std::string& text) {
  Eml m;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find("\r\n", pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !m.headers.empty()) {
      m.headers.back().second += "\r\n" + line;
      continue;
    }
    auto colon = line.find(':');
    m.headers.push_back({line.substr(0, colon), line.substr(colon + 1)});
  }
  m.body = pos < text.size() ? text.substr(pos) : "";
  return m;
}

const char* kMessage =
    "From: Alice <alice@orig.test>\r\n"
    "To: list@lists.test\r\n"
    "Subject: ARC through the milter\r\n"
    "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <arc-milter@orig.test>\r\n"
    "\r\n"
    "Hello list.\r\n"
    "\r\n";

class DkimArcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                                    "rsa_keygen_bits:2048", "-out", (*dir_ / "rsa.pem").string()}),
              0);
    std::string record = load_private_key((*dir_ / "rsa.pem").string()).public_record;
    std::string keys;
    for (const char* n : {"s1._domainkey.orig.test", "sel._domainkey.lists.test",
                          "arc._domainkey.mxguard.test", "rsa._domainkey.example.test"}) {
      keys += std::string(n) + " " + record + "\n";
    }
    testing::write_file(*dir_ / "keys.txt", keys);
    dns_ = new testing::DnsServer(
        "$ORIGIN test.\n$TTL 300\n"
        "@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
        "s1._domainkey.orig IN TXT" +
        txt(record) +
        "\n"
        "sel._domainkey.lists IN TXT" +
        txt(record) +
        "\n"
        "arc._domainkey.mxguard IN TXT" +
        txt(record) +
        "\n"
        "_dmarc.orig IN TXT \"v=DMARC1; p=reject\"\n"
        "!timeout slow._domainkey.orig.test.\n");
    port_ = testing::free_tcp_port();
    Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(port_);
    o.dns.servers = {dns_->server_spec()};
    o.dns.timeout = std::chrono::milliseconds(1000);
    o.authserv_id = "mx.mxguard.test";
    testing::write_file(*dir_ / "hop-secret", std::string(kSecret) + "\n");
    o.hop_secret_file = (*dir_ / "hop-secret").string();
    o.domain = {"example.test"};
    o.selector = {"rsa"};
    o.key_file = {(*dir_ / "rsa.pem").string()};
    o.internal_hosts = {"127.0.0.1"};
    o.arc_seal = "forwarded";
    o.arc_seal_key = "mxguard.test:arc:" + (*dir_ / "rsa.pem").string();
    options_ = new Options(o);
    service_ = new DkimService(o);
    service_->open();
    thread_ = new std::thread([] { service_->serve(); });
  }
  static void TearDownTestSuite() {
    service_->stop();
    thread_->join();
    delete thread_;
    delete service_;
    delete options_;
    delete dns_;
    delete dir_;
  }

  // python3-dkim seals message file `in` as d=domain s=selector into `out`.
  static void py_seal(const std::string& in, const std::string& out, const std::string& selector,
                      const std::string& domain) {
    std::string text;
    ASSERT_EQ(testing::run_command({"/usr/bin/python3", kTool, "arc-sign", (*dir_ / in).string(),
                                    (*dir_ / "rsa.pem").string(), selector, domain, "mx." + domain,
                                    "rsa", (*dir_ / "keys.txt").string()},
                                   &text),
              0)
        << text;
    testing::write_file(*dir_ / out, text);
  }
  static std::string read(const std::string& f) { return testing::read_file(*dir_ / f); }

  // Sends the message from `client` through the milter; echoes the headers it added.
  static testing::MiltertestResult send(const std::string& client, const Eml& m) {
    std::string s = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client.example", ")" +
                    client + R"(") ~= nil then error("conninfo") end
mt.macro(conn, SMFIC_MAIL, "i", "4XarcQ1abc")
if mt.mailfrom(conn, "<alice@orig.test>") ~= nil then error("mailfrom failed") end
)";
    for (const auto& [n, v] : m.headers) {
      s += "if mt.header(conn, \"" + n + "\", " + testing::lua_quote(v) +
           ") ~= nil then error(\"header\") end\n";
    }
    s += "mt.eoh(conn)\nmt.bodystring(conn, " + testing::lua_quote(m.body) + ")\nmt.eom(conn)\n";
    s += "local r = mt.getreply(conn)\nif r ~= SMFIR_ACCEPT then error(\"reply \" .. tostring(r)) "
         "end\n";
    for (const char* h : {"ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results",
                          "DKIM-Signature", "Authentication-Results"}) {
      s += std::string("local v = mt.getheader(conn, \"") + h + "\", 0)\n" +
           "if v ~= nil then mt.echo(\"" + h + "<<\" .. v .. \">>\") end\n";
    }
    s += "mt.disconnect(conn)\n";
    return testing::run_miltertest(s, "inet:" + std::to_string(port_) + "@127.0.0.1");
  }

  static TempDir* dir_;
  static testing::DnsServer* dns_;
  static int port_;
  static DkimService* service_;
  static Options* options_;
  static std::thread* thread_;
};

TempDir* DkimArcTest::dir_ = nullptr;
testing::DnsServer* DkimArcTest::dns_ = nullptr;
int DkimArcTest::port_ = 0;
DkimService* DkimArcTest::service_ = nullptr;
Options* DkimArcTest::options_ = nullptr;
std::thread* DkimArcTest::thread_ = nullptr;

TEST_F(DkimArcTest, PassingChainIsReportedWithSealers) {
  testing::write_file(*dir_ / "m0.eml", kMessage);
  py_seal("m0.eml", "m1.eml", "s1", "orig.test");
  py_seal("m1.eml", "m2.eml", "sel", "lists.test");
  auto r = send("198.51.100.7", split_message(read("m2.eml")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string ar = common::authres::strip_seal(between(r.output, "Authentication-Results<<", ">>"));
  EXPECT_NE(ar.find("arc=pass (as[2].d=lists.test as[2].s=sel as[1].d=orig.test as[1].s=s1) "
                    "header.oldest-pass=0 smtp.remote-ip=198.51.100.7"),
            std::string::npos)
      << r.output;
  // Verify mode never seals.
  EXPECT_EQ(r.output.find("ARC-Seal<<"), std::string::npos) << r.output;
}

TEST_F(DkimArcTest, TamperedChainFailsAndNoChainIsNone) {
  testing::write_file(*dir_ / "t0.eml", kMessage);
  py_seal("t0.eml", "t1.eml", "s1", "orig.test");
  std::string text = read("t1.eml");
  text.replace(text.find("Hello list."), 11, "Hello LIST.");
  auto r = send("198.51.100.7", split_message(text));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string ar = between(r.output, "Authentication-Results<<", ">>");
  EXPECT_NE(ar.find("arc=fail (as[1].d=orig.test as[1].s=s1) reason="), std::string::npos) << ar;
  EXPECT_NE(ar.find("body hash mismatch"), std::string::npos) << ar;

  r = send("198.51.100.7", split_message(kMessage));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ar = between(r.output, "Authentication-Results<<", ">>");
  EXPECT_NE(ar.find("arc=none smtp.remote-ip=198.51.100.7"), std::string::npos) << ar;
}

TEST_F(DkimArcTest, KeyLookupTimeoutFails) {
  testing::write_file(*dir_ / "d0.eml", kMessage);
  py_seal("d0.eml", "d1.eml", "s1", "orig.test");
  std::string text = read("d1.eml");
  for (std::size_t p; (p = text.find("s=s1;")) != std::string::npos;) text.replace(p, 5, "s=slow;");
  auto r = send("198.51.100.7", split_message(text));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string ar = between(r.output, "Authentication-Results<<", ">>");
  EXPECT_NE(ar.find("arc=fail"), std::string::npos) << ar;
  EXPECT_NE(ar.find("temporarily"), std::string::npos) << ar;
  // Forwarded by an internal client: not sealed, since the failure may be temporary.
  r = send("127.0.0.1", split_message(text));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("ARC-Seal<<"), std::string::npos) << r.output;
}

TEST_F(DkimArcTest, ForwardedMailIsSealedAndPythonVerifies) {
  testing::write_file(*dir_ / "f0.eml", kMessage);
  py_seal("f0.eml", "f1.eml", "s1", "orig.test");
  Eml in = split_message(read("f1.eml"));
  auto r = send("127.0.0.1", in);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string as = between(r.output, "ARC-Seal<<", ">>");
  std::string ams = between(r.output, "ARC-Message-Signature<<", ">>");
  std::string aar = between(r.output, "ARC-Authentication-Results<<", ">>");
  ASSERT_FALSE(as.empty()) << r.output;
  EXPECT_NE(as.find("i=2; a=rsa-sha256; cv=pass; d=mxguard.test; s=arc;"), std::string::npos) << as;
  EXPECT_NE(aar.find("i=2; mx.mxguard.test;"), std::string::npos) << aar;
  EXPECT_NE(aar.find("arc=pass"), std::string::npos) << aar;
  // The message as the next hop sees it (the DKIM-Signature we added is not signed by the AMS,
  // which covers the fields the message came with).
  std::string msg = crlf("ARC-Seal:" + as) + "\r\n" + crlf("ARC-Message-Signature:" + ams) +
                    "\r\n" + crlf("ARC-Authentication-Results:" + aar) + "\r\n";
  std::string sig = between(r.output, "DKIM-Signature<<", ">>");
  if (!sig.empty()) msg += crlf("DKIM-Signature:" + sig) + "\r\n";
  for (const auto& [n, v] : in.headers) msg += n + ":" + v + "\r\n";
  msg += "\r\n" + in.body;
  testing::write_file(*dir_ / "f2.eml", msg);
  std::string out;
  EXPECT_EQ(testing::run_command({"/usr/bin/python3", kTool, "arc-verify",
                                  (*dir_ / "f2.eml").string(), (*dir_ / "keys.txt").string()},
                                 &out),
            0)
      << out << msg;
  // And inbound at the next hop (us again), the 2-set chain passes.
  r = send("198.51.100.9", split_message(msg));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(between(r.output, "Authentication-Results<<", ">>")
                .find("arc=pass (as[2].d=mxguard.test as[2].s=arc as[1].d=orig.test "
                      "as[1].s=s1) header.oldest-pass=0"),
            std::string::npos)
      << r.output;
}

TEST_F(DkimArcTest, FreshInternalMailIsNotSealedWhenForwardedOnly) {
  auto r = send("127.0.0.1", split_message(kMessage));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("ARC-Seal<<"), std::string::npos) << r.output;
}

// libmilter allows one milter per process: arc-verify = no through a reload (SIGUSR1's path).
TEST_F(DkimArcTest, ArcVerifyNoLeavesTheHeaderAsBefore) {
  Options off = *options_;
  off.arc_verify = false;
  service_->reload(off);
  testing::write_file(*dir_ / "v0.eml", kMessage);
  py_seal("v0.eml", "v1.eml", "s1", "orig.test");
  auto r = send("198.51.100.7", split_message(read("v1.eml")));
  service_->reload(*options_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string ar = common::authres::strip_seal(between(r.output, "Authentication-Results<<", ">>"));
  EXPECT_EQ(ar, " mx.mxguard.test;\n\tdkim=none") << r.output;
}

// Issue 19's DMARC side, the way two daemons meet in production: mxguard-dkim's sealed A-R
// header (arc=pass with the sealers) reaches the real mxguard-dmarc binary for the same queue
// id. The author's p=reject fails (no DKIM signature, no SPF record): rejected without
// trusted-arc-sealers, accepted with lists.test listed (the newest seal's signer), with
// dis=none and the override in the decision line; orig.test alone (the oldest sealer) is not
// enough.
TEST_F(DkimArcTest, MxguardDmarcLetsATrustedSealersIntactChainOverrideAFail) {
  testing::write_file(*dir_ / "o0.eml", kMessage);
  py_seal("o0.eml", "o1.eml", "s1", "orig.test");
  py_seal("o1.eml", "o2.eml", "sel", "lists.test");
  Eml m = split_message(read("o2.eml"));
  auto r = send("198.51.100.7", m);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string ar = between(r.output, "Authentication-Results<<", ">>");
  ASSERT_NE(ar.find("arc=pass (as[2].d=lists.test"), std::string::npos) << r.output;

  const std::string binary = std::string(MXGUARD_BINARY_DIR) + "/milters/dmarc/mxguard-dmarc";
  struct Case {
    std::string trusted;
    bool accepted;
  };
  for (const Case& c : {Case{"", false}, Case{"lists.test", true}, Case{"orig.test", false}}) {
    SCOPED_TRACE("trusted-arc-sealers = " + c.trusted);
    int port = testing::free_tcp_port();
    std::string conf = (*dir_ / ("dmarc-" + std::to_string(port) + ".conf")).string();
    testing::write_file(conf, "listen = inet:127.0.0.1:" + std::to_string(port) +
                                  "\ndns-servers = " + dns_->server_spec() +
                                  "\nauthserv-id = mx.mxguard.test\nhop-secret-file = " +
                                  (*dir_ / "hop-secret").string() +
                                  "\naggregate-reports = no\ntrusted-networks = 127.0.0.1/32\n" +
                                  "trusted-arc-sealers = " + c.trusted + "\n");
    testing::Process dmarc({binary, "--foreground", "--log-target", "stderr", "-c", conf},
                           *dir_ / ("dmarc-" + std::to_string(port) + ".log"));
    ASSERT_TRUE(testing::wait_for_tcp("127.0.0.1", port, std::chrono::seconds(10))) << dmarc.log();
    std::string s = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client.example", "198.51.100.7") ~= nil then error("conninfo") end
if mt.helo(conn, "client.example") ~= nil then error("helo") end
mt.macro(conn, SMFIC_MAIL, "i", "4XarcQ1abc")
if mt.mailfrom(conn, "<alice@orig.test>") ~= nil then error("mailfrom failed") end
)";
    s += "if mt.header(conn, \"Authentication-Results\", " + testing::lua_quote(ar) +
         ") ~= nil then error(\"header\") end\n";
    for (const auto& [n, v] : m.headers) {
      s += "if mt.header(conn, \"" + n + "\", " + testing::lua_quote(v) +
           ") ~= nil then error(\"header\") end\n";
    }
    s += "mt.eoh(conn)\nmt.eom(conn)\nlocal r = mt.getreply(conn)\n"
         "if r == SMFIR_ACCEPT or r == SMFIR_CONTINUE then mt.echo(\"ACCEPTED\") end\n"
         "if r == SMFIR_REPLYCODE then mt.echo(\"REPLYCODE\") end\n"
         "local v = mt.getheader(conn, \"Authentication-Results\", 0)\n"
         "if v ~= nil then mt.echo(\"AR<<\" .. v .. \">>\") end\nmt.disconnect(conn)\n";
    auto d = testing::run_miltertest(s, "inet:" + std::to_string(port) + "@127.0.0.1");
    ASSERT_EQ(d.exit_code, 0) << d.output << dmarc.log();
    std::string log = dmarc.log();
    EXPECT_NE(log.find("forged_ar_removed=0"), std::string::npos) << log;  // our seal held
    if (c.accepted) {
      EXPECT_NE(d.output.find("ACCEPTED"), std::string::npos) << d.output;
      // Our results go into the trusted A-R header (a change, which miltertest does not echo).
      EXPECT_NE(log.find("p=reject dis=none"), std::string::npos) << log;
      EXPECT_NE(log.find("4XarcQ1abc: dmarc=fail action=\"none (trusted-arc-sealer)\""),
                std::string::npos)
          << log;
      EXPECT_NE(log.find("override=local_policy arc=pass/lists.test"), std::string::npos) << log;
    } else {
      EXPECT_NE(d.output.find("REPLYCODE"), std::string::npos) << d.output << log;
      EXPECT_NE(log.find("action=reject"), std::string::npos) << log;
      EXPECT_NE(log.find("arc=pass/lists.test"), std::string::npos) << log;
    }
  }
}

}  // namespace
}  // namespace mxguard::milter::dkim
