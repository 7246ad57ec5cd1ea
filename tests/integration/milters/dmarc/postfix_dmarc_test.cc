// End to end through a private Postfix with the real binaries in the documented order
// (smtpd_milters = mxguard-dkim, mxguard-dmarc): a forged From of a p=reject domain gets 550
// 5.7.1 naming the domain; the same message carrying a forged "Authentication-Results: <our
// authserv-id>; dkim=pass; spf=pass" is still rejected, and on accepted mail the forged header
// never reaches the sink; mail signed by mxguard-dkim (first hop) from an aligned domain passes
// DMARC on the way back in (second hop) with DKIM, SPF and DMARC in one A-R header; a 10 KB
// From header is refused; every decision line carries the Postfix queue id.
// Must never touch the system Postfix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;

const std::string kDkim = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-dkim";
const std::string kDmarc = std::string(MXGUARD_BINARY_DIR) + "/milters/dmarc/mxguard-dmarc";
const std::string kKeygen = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-keygen";

std::string one_line_record(const std::string& keygen_output) {
  auto p = keygen_output.find("v=DKIM1");
  return keygen_output.substr(p, keygen_output.find('\n', p) - p);
}

class PostfixDmarcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    std::string out;
    ASSERT_EQ(run_command({kKeygen, "--domain", "example.test", "--selector", "s1", "--dir",
                           dir_.path().string()},
                          &out),
              0)
        << out;
    std::string record = one_line_record(out);
    std::string txt = "s1._domainkey.example IN TXT";
    for (std::size_t i = 0; i < record.size(); i += 200)
      txt += " \"" + record.substr(i, 200) + "\"";
    dns_ = std::make_unique<DnsServer>(
        "$ORIGIN test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n" + txt + "\n" +
        "_dmarc.example IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@example.test\"\n"
        "example IN TXT \"v=spf1 -all\"\n"
        "_dmarc.bank IN TXT \"v=DMARC1; p=reject\"\n"
        "bank IN TXT \"v=spf1 -all\"\n"
        "_dmarc.relaxed IN TXT \"v=DMARC1; p=none\"\n");
    dkim_port_ = free_tcp_port();
    dmarc_port_ = free_tcp_port();
    write_file(dir_ / "hop-secret", "postfix-dmarc-test-secret-0123456789\n");
    const std::string secret = "hop-secret-file = " + (dir_ / "hop-secret").string() + "\n";
    write_file(dir_ / "dkim.conf",
               secret + "listen = inet:127.0.0.1:" + std::to_string(dkim_port_) +
                   "\ndns-servers = " + dns_->server_spec() +
                   "\nauthserv-id = mx.mxguard.test\n"
                   "domain = example.test\nselector = s1\n"
                   "key-file = " +
                   (dir_ / "s1.private").string() + "\ninternal-hosts = 127.0.0.1\n");
    write_file(dir_ / "dmarc.conf", secret +
                                        "listen = inet:127.0.0.1:" + std::to_string(dmarc_port_) +
                                        "\ndns-servers = " + dns_->server_spec() +
                                        "\nauthserv-id = mx.mxguard.test\n"
                                        "trusted-networks = 127.0.0.1/32\n"
                                        "redis-url = " +
                                        redis_.url() + "\n");
    dkim_ = Process(
        {kDkim, "--foreground", "--log-target", "stderr", "-c", (dir_ / "dkim.conf").string()},
        dir_ / "dkim.log");
    dmarc_ = Process(
        {kDmarc, "--foreground", "--log-target", "stderr", "-c", (dir_ / "dmarc.conf").string()},
        dir_ / "dmarc.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", dkim_port_, seconds(10))) << dkim_.log();
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", dmarc_port_, seconds(10))) << dmarc_.log();
    PostfixInstance::Options o;
    o.smtpd_milters = "inet:127.0.0.1:" + std::to_string(dkim_port_) +
                      ", inet:127.0.0.1:" + std::to_string(dmarc_port_);
    o.listen_addresses = {"127.0.0.1", "127.0.0.2"};
    postfix_ = std::make_unique<PostfixInstance>(o);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- mxguard-dkim log:\n" << read_file(dir_ / "dkim.log");
      std::cerr << "--- mxguard-dmarc log:\n" << read_file(dir_ / "dmarc.log");
      if (postfix_) std::cerr << "--- Postfix maillog:\n" << postfix_->maillog();
    }
  }

  std::optional<DeliveredMessage> delivered_with(const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      for (auto& m : postfix_->delivered()) {
        if (m.raw.find(needle) != std::string::npos) return m;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }

  SwaksResult send_external(const std::string& data, const std::string& from = "x@elsewhere.test") {
    SwaksOptions m;
    m.from = from;
    m.to = {"bob@example.test"};
    m.local_interface = "127.0.0.2";
    m.data = data;
    return postfix_->send(m);
  }

  TempDir dir_;
  RedisServer redis_;
  std::unique_ptr<DnsServer> dns_;
  int dkim_port_ = 0, dmarc_port_ = 0;
  Process dkim_, dmarc_;
  std::unique_ptr<PostfixInstance> postfix_;
};

TEST_F(PostfixDmarcTest, ForgedFromOfRejectDomainGets550) {
  SwaksResult r = send_external(
      "From: CEO <ceo@bank.test>\r\nTo: bob@example.test\r\n"
      "Subject: wire transfer\r\n\r\nPay now.\r\n");
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("5.7.1"));
  EXPECT_THAT(r.transcript, HasSubstr("bank.test"));
  EXPECT_TRUE(postfix_->wait_for_log("milter-reject", std::chrono::seconds(5)));
  EXPECT_THAT(read_file(dir_ / "dmarc.log"), HasSubstr("dmarc=fail action=reject from=bank.test"));
}

TEST_F(PostfixDmarcTest, ForgedAuthenticationResultsChangeNothing) {
  const std::string forged =
      "Authentication-Results: mx.mxguard.test; dkim=pass header.d=bank.test; spf=pass "
      "smtp.mailfrom=bank.test\r\n";
  SwaksResult r = send_external(forged +
                                "From: CEO <ceo@bank.test>\r\nTo: bob@example.test\r\n"
                                "Subject: forged ar\r\n\r\nPay now.\r\n");
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  // Accepted mail (p=none) never carries the forged header to the mailbox.
  r = send_external(forged +
                    "From: <news@relaxed.test>\r\nTo: bob@example.test\r\n"
                    "Subject: forged ar none\r\n\r\nHello.\r\n");
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("forged ar none");
  ASSERT_TRUE(d);
  auto ars = d->header("Authentication-Results");
  ASSERT_EQ(ars.size(), 1u) << d->headers();
  EXPECT_EQ(d->raw.find("header.d=bank.test"), std::string::npos) << d->headers();
  EXPECT_THAT(ars[0], HasSubstr("dmarc=fail (p=none dis=none) header.from=relaxed.test"));
  EXPECT_THAT(read_file(dir_ / "dmarc.log"), HasSubstr(r.queue_id + ": dmarc=fail action=accept"));
}

TEST_F(PostfixDmarcTest, MailSignedByMxguardDkimPassesDmarcOnTheWayBackIn) {
  // Hop 1: internal submission, signed by mxguard-dkim, not evaluated (trusted network).
  SwaksOptions m;
  m.from = "alice@example.test";
  m.to = {"bob@elsewhere.test"};
  m.headers = {"From: Alice <alice@example.test>", "Subject: signed round trip"};
  m.body = "Aligned and signed.";
  SwaksResult r = postfix_->send(m);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto hop1 = delivered_with("signed round trip");
  ASSERT_TRUE(hop1);
  ASSERT_EQ(hop1->header("DKIM-Signature").size(), 1u) << hop1->headers();
  // Hop 2: the signed message comes back in from outside with a foreign envelope sender.
  r = send_external(hop1->raw, "bounce@forwarder.test");
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  std::optional<DeliveredMessage> hop2;
  for (int i = 0; i < 100 && !hop2; ++i) {
    for (auto& d : postfix_->delivered()) {
      if (d.raw.find("signed round trip") != std::string::npos &&
          !d.header("Authentication-Results").empty()) {
        hop2 = d;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(hop2);
  auto ars = hop2->header("Authentication-Results");
  ASSERT_EQ(ars.size(), 1u) << hop2->headers();
  EXPECT_THAT(ars[0], HasSubstr("dkim=pass header.d=example.test"));
  EXPECT_THAT(ars[0], HasSubstr("spf=none smtp.mailfrom=bounce@forwarder.test"));
  EXPECT_THAT(ars[0], HasSubstr("dmarc=pass (p=reject dis=none) header.from=example.test"));
  EXPECT_THAT(read_file(dir_ / "dmarc.log"),
              HasSubstr(r.queue_id + ": dmarc=pass action=accept from=example.test"));
}

TEST_F(PostfixDmarcTest, TenKilobyteFromHeaderIsRefused) {
  SwaksResult r = send_external("From: \"" + std::string(10 * 1024, 'x') +
                                "\" <ceo@relaxed.test>\r\nTo: bob@example.test\r\n"
                                "Subject: huge from\r\n\r\nHi.\r\n");
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  EXPECT_THAT(read_file(dir_ / "dmarc.log"), HasSubstr("From header longer than"));
  // The daemon is still there for the next message.
  r = send_external(
      "From: <news@relaxed.test>\r\nTo: bob@example.test\r\nSubject: after huge\r\n"
      "\r\nHi.\r\n");
  EXPECT_EQ(r.data_code, 250) << r.transcript;
}

}  // namespace
}  // namespace mxguard::testing
