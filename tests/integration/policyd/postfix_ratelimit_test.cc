// End-to-end outbound rate limits: a private Postfix (tests/fixtures/postfix.h) with SASL through
// a private Dovecot (tests/fixtures/dovecot_server.h, auth-client socket) asks the real
// mxguard-policyd binary (checks = ratelimit) at RCPT and at END-OF-MESSAGE. A SASL user over
// the recipient limit gets 4xx at RCPT, over the message limit 4xx after DATA; other users are
// unaffected; one warning per user and window.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "tests/fixtures/dovecot_server.h"
#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using std::chrono::seconds;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-policyd";

class PostfixRateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = DovecotServer::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    policy_port_ = free_tcp_port();
    write_file(dir_ / "policyd.conf", "listen = inet:127.0.0.1:" + std::to_string(policy_port_) +
                                          "\n" + "redis-url = " + redis_.url() + "\n" +
                                          "trusted-networks = 127.0.0.1/32\n"
                                          "checks = ratelimit\n"
                                          "greylist-whitelist-clients = /dev/null\n"
                                          "greylist-whitelist-recipients = /dev/null\n"
                                          "ratelimit-sasl-recipients = 3/1h\n"
                                          "ratelimit-sasl-messages = 2/1h\n");
    policyd_ = Process(
        {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "policyd.conf").string()},
        dir_ / "policyd.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", policy_port_, seconds(10))) << policyd_.log();
    DovecotServer::Options d;
    d.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
    d.sasl_socket = (dovecot_dir_.path() / "auth-postfix").string();
    dovecot_ = std::make_unique<DovecotServer>(d);
    std::string policy = "inet:127.0.0.1:" + std::to_string(policy_port_);
    PostfixInstance::Options o;
    o.policy_service = policy;
    o.extra_main_cf = {"smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = dovecot",
                       "smtpd_sasl_path = " + d.sasl_socket,
                       "smtpd_end_of_data_restrictions = check_policy_service " + policy};
    postfix_ = std::make_unique<PostfixInstance>(o);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- mxguard-policyd log:\n" << policyd_.log();
      if (postfix_) std::cerr << "--- Postfix maillog:\n" << postfix_->maillog();
      if (dovecot_) std::cerr << "--- Dovecot log:\n" << dovecot_->log();
    }
  }

  SwaksResult send(const std::string& user, const std::string& password,
                   const std::vector<std::string>& to) const {
    SwaksOptions m;
    m.from = user + "@example.org";
    m.to = to;
    m.local_interface = "127.0.0.2";  // not mynetworks: only SASL makes it outbound
    m.body = "body " + std::to_string(++counter_);
    m.extra_args = {"--auth", "PLAIN", "--auth-user", user, "--auth-password", password};
    return postfix_->send(m);
  }

  TempDir dir_;
  TempDir dovecot_dir_;
  RedisServer redis_;
  int policy_port_ = 0;
  Process policyd_;
  std::unique_ptr<DovecotServer> dovecot_;
  std::unique_ptr<PostfixInstance> postfix_;
  mutable int counter_ = 0;
};

TEST_F(PostfixRateLimitTest, SaslUserOverTheLimitIsDeferredOthersAreNot) {
  // 3 recipients per hour: the first message's two recipients pass, of the second's two the
  // second is deferred (4xx at RCPT) while the message goes to the first.
  auto r = send("alice", "alice-pw", {"r1@dest.example", "r2@dest.example"});
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  r = send("alice", "alice-pw", {"r3@dest.example", "r4@dest.example"});
  ASSERT_EQ(r.rcpt_codes.size(), 2u) << r.transcript;
  EXPECT_EQ(r.rcpt_codes[0], 250) << r.transcript;
  EXPECT_EQ(r.rcpt_codes[1], 450) << r.transcript;
  EXPECT_NE(r.transcript.find("Rate limit exceeded for alice (3 recipients per 1h)"),
            std::string::npos)
      << r.transcript;
  // Two messages per hour: both above were counted at END-OF-MESSAGE; a third is refused.
  r = send("alice", "alice-pw", {"r5@dest.example"});
  EXPECT_EQ(r.rcpt_code, 450) << r.transcript;  // recipients are over as well
  // bob is unaffected.
  r = send("bob", "bob-pw", {"b1@dest.example"});
  EXPECT_EQ(r.data_code, 250) << r.transcript;
  r = send("bob", "bob-pw", {"b2@dest.example"});
  EXPECT_EQ(r.data_code, 250) << r.transcript;
  r = send("bob", "bob-pw", {"b3@dest.example"});  // third message: refused after DATA
  EXPECT_EQ(r.rcpt_code, 250) << r.transcript;
  EXPECT_EQ(r.data_code / 100, 4) << r.transcript;
  EXPECT_NE(r.transcript.find("2 messages per 1h"), std::string::npos) << r.transcript;
  std::string log = policyd_.log();
  EXPECT_NE(log.find("check=ratelimit result=over"), std::string::npos) << log;
  // Alerts: once for alice's recipients, once for bob's messages.
  EXPECT_EQ(log.find("ratelimit: sasl:alice exceeded 3 recipients"),
            log.rfind("ratelimit: sasl:alice exceeded 3 recipients"));
  EXPECT_NE(log.find("ratelimit: sasl:bob exceeded 2 messages"), std::string::npos) << log;
}

TEST_F(PostfixRateLimitTest, WrongPasswordIsNotAuthenticated) {
  auto r = send("alice", "wrong", {"x@dest.example"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.data_code, 0) << r.transcript;
}

}  // namespace
}  // namespace mxguard::testing
