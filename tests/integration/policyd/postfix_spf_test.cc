// End-to-end SPF: a private Postfix asks the real mxguard-policyd binary, which checks SPF
// against a real DNS server on loopback. What the administrator sees on the wire: an SPF fail
// is rejected at RCPT with 550 5.7.23 and the record's explanation, a pass is delivered with
// Received-SPF and Authentication-Results, a temperror follows --spf-temperror-defer.
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

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-policyd";

const char* kZone = R"(
$ORIGIN example.test.
$TTL 60
@      IN SOA ns1 hostmaster 1 3600 600 86400 60
pass   IN TXT "v=spf1 ip4:127.0.0.2 -all"
fail   IN TXT "v=spf1 ip4:192.0.2.0/24 -all exp=why.example.test"
why    IN TXT "%{i} is not allowed to send mail for %{d}"
!timeout slow.example.test.
)";

class PostfixSpfTest : public ::testing::Test {
 protected:
  PostfixSpfTest() : dns_(kZone) {}

  void start(const std::string& extra) {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    port_ = free_tcp_port();
    write_file(dir_ / "policyd.conf",
               "listen = inet:127.0.0.1:" + std::to_string(port_) + "\n" + "redis-url = " +
                   redis_.url() + "\n" + "dns-servers = " + dns_.server_spec() + "\n" +
                   "dns-timeout = 500ms\n"
                   "spf-timeout = 2s\n"
                   "checks = spf\n"
                   "trusted-networks = 127.0.0.1/32\n"
                   "spf-skip-addresses = 127.0.0.1/32\n"  // 127.0.0.2 is "external" here
                   "authserv-id = mx.mxguard.test\n"
                   "greylist-whitelist-clients = /dev/null\n"
                   "greylist-whitelist-recipients = /dev/null\n" +
                   extra);
    policyd_ = Process(
        {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "policyd.conf").string()},
        dir_ / "policyd.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, seconds(10))) << policyd_.log();
    PostfixInstance::Options o;
    o.policy_service = "inet:127.0.0.1:" + std::to_string(port_);
    // A second slot for headers: one PREPEND per policy reply (see docs/mxguard-policyd.md).
    o.extra_main_cf = {"smtpd_data_restrictions = check_policy_service inet:127.0.0.1:" +
                       std::to_string(port_)};
    postfix_ = std::make_unique<PostfixInstance>(o);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- mxguard-policyd log:\n" << read_file(dir_ / "policyd.log");
      if (postfix_) std::cerr << "--- Postfix maillog:\n" << postfix_->maillog();
    }
  }

  SwaksResult send(const std::string& from) {
    SwaksOptions m;
    m.from = from;
    m.to = {"user@rcpt.example"};
    m.local_interface = "127.0.0.2";
    m.helo = "[127.0.0.2]";
    m.headers = {"Subject: spf " + from};
    return postfix_->send(m);
  }

  std::optional<DeliveredMessage> delivered_from(const std::string& from) {
    for (int i = 0; i < 100; ++i) {
      for (auto& m : postfix_->delivered()) {
        if (m.sender == from) return m;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }

  DnsServer dns_;
  RedisServer redis_;
  TempDir dir_;
  int port_ = 0;
  Process policyd_;
  std::unique_ptr<PostfixInstance> postfix_;
};

TEST_F(PostfixSpfTest, FailIsRejectedAtRcptWith5723AndTheExplanation) {
  start("");
  SwaksResult r = send("alice@fail.example.test");
  EXPECT_EQ(r.rcpt_code, 550) << r.transcript;
  // Postfix puts "<rcpt>: Recipient address rejected:" between the code and our text.
  EXPECT_THAT(r.transcript, HasSubstr("550 5.7.23 <user@rcpt.example>"));
  EXPECT_THAT(r.transcript, HasSubstr("Message rejected due to SPF fail: 127.0.0.2 is not "
                                      "allowed to send mail for fail.example.test"));
  EXPECT_EQ(postfix_->queue_size(), 0u);
}

TEST_F(PostfixSpfTest, PassIsDeliveredWithBothHeaders) {
  start("spf-header = both\n");
  SwaksResult r = send("bob@pass.example.test");
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto m = delivered_from("bob@pass.example.test");
  ASSERT_TRUE(m) << postfix_->maillog();
  auto spf = m->header("Received-SPF");
  ASSERT_EQ(spf.size(), 1u) << m->headers();
  EXPECT_THAT(spf[0], HasSubstr("pass (domain of bob@pass.example.test designates 127.0.0.2 as "
                                "permitted sender) client-ip=127.0.0.2;"));
  auto ar = m->header("Authentication-Results");
  ASSERT_EQ(ar.size(), 1u) << m->headers();
  EXPECT_EQ(ar[0], "mx.mxguard.test; spf=pass smtp.mailfrom=pass.example.test");
}

TEST_F(PostfixSpfTest, TemperrorIsAcceptedByDefault) {
  start("");
  SwaksResult r = send("carol@slow.example.test");
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto m = delivered_from("carol@slow.example.test");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->header("Received-SPF").size(), 1u);
  EXPECT_THAT(m->header("Received-SPF")[0], HasSubstr("temperror"));
}

TEST_F(PostfixSpfTest, TemperrorIsDeferredWhenConfigured) {
  start("spf-temperror-defer = yes\n");
  SwaksResult r = send("dave@slow.example.test");
  EXPECT_EQ(r.rcpt_code, 451) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("451 4.7.24 <user@rcpt.example>"));
  EXPECT_THAT(r.transcript, HasSubstr("SPF temporary error: DNS timeout for slow.example.test"));
}

}  // namespace
}  // namespace mxguard::testing
