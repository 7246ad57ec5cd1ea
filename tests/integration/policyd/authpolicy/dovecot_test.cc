// End to end with a real Dovecot 2.3 (tests/fixtures/dovecot_server.h) whose
// auth_policy_server_url points at the mxguard-authpolicy binary: failed IMAP logins from one
// address are first delayed, then refused even with the right password, while another address
// still logs in; with Redis stopped logins work. About 10 s.
#include <gtest/gtest.h>

#include <thread>

#include "tests/fixtures/dovecot_server.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using namespace std::chrono_literals;

const std::string kBinary =
    std::string(MXGUARD_BINARY_DIR) + "/policyd/authpolicy/mxguard-authpolicy";

class DovecotAuthPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = DovecotServer::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    port_ = free_tcp_port();
    write_file(dir_ / "authpolicy.conf", "listen = inet:127.0.0.1:" + std::to_string(port_) + "\n" +
                                             "redis-url = " + redis_.url() + "\n" +
                                             "api-header = X-API-Key: test-secret\n"
                                             "allow-networks = 127.0.0.1/32\n"
                                             "ip-tarpit = 3/10m\n"
                                             "ip-limits = 5/10m\n"
                                             "net-tarpit = 100/10m\n"
                                             "net-limits = 200/10m\n"
                                             "login-tarpit = 100/10m\n"
                                             "tarpit-delay = 1s\n"
                                             "tarpit-max-delay = 2s\n");
    daemon_ = Process({kBinary, "--foreground", "--log-target", "stderr", "-c",
                       (dir_ / "authpolicy.conf").string()},
                      dir_ / "authpolicy.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, 10s)) << daemon_.log();
    DovecotServer::Options o;
    o.policy_url = "http://127.0.0.1:" + std::to_string(port_) + "/";
    o.policy_api_header = "X-API-Key: test-secret";
    dovecot_ = std::make_unique<DovecotServer>(o);
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- authpolicy log:\n"
                << daemon_.log() << "\n--- dovecot log:\n"
                << (dovecot_ ? dovecot_->log() : "") << "\n";
    }
  }

  TempDir dir_;
  RedisServer redis_;
  int port_ = 0;
  Process daemon_;
  std::unique_ptr<DovecotServer> dovecot_;
};

TEST_F(DovecotAuthPolicyTest, DelaysThenRefusesOneAddressOnly) {
  auto first = dovecot_->login("alice", "alice-pw", "127.0.0.2");
  ASSERT_TRUE(first.ok) << first.response;
  for (int i = 0; i < 3; ++i) {
    auto r = dovecot_->login("alice", "wrong-" + std::to_string(i), "127.0.0.2");
    EXPECT_FALSE(r.ok) << r.response;
  }
  std::this_thread::sleep_for(300ms);  // Dovecot reports after answering the client
  // 3 failures = ip-tarpit: the next attempt waits (Dovecot sleeps the status seconds).
  auto delayed = dovecot_->login("bob", "bob-pw", "127.0.0.2");
  EXPECT_TRUE(delayed.ok) << delayed.response;  // a success resets the address' counters
  EXPECT_GE(delayed.elapsed, 900ms);
  for (int i = 0; i < 6; ++i) dovecot_->login("alice", "bad-" + std::to_string(i), "127.0.0.2");
  std::this_thread::sleep_for(300ms);
  // 6 > 5/10m: blocked, even with the right password.
  auto refused = dovecot_->login("alice", "alice-pw", "127.0.0.2");
  EXPECT_FALSE(refused.ok) << refused.response;
  // Another address logs in at once.
  auto other = dovecot_->login("alice", "alice-pw", "127.0.0.3");
  EXPECT_TRUE(other.ok) << other.response;
  EXPECT_LT(other.elapsed, 900ms);
  std::string log = daemon_.log();
  EXPECT_NE(log.find("command=allow result=reject status=-1 remote=127.0.0.2 login=alice "
                     "protocol=imap"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("command=report result=counted"), std::string::npos) << log;
  EXPECT_NE(log.find("blocked ip 127.0.0.2"), std::string::npos) << log;
  // Dovecot's session id is the log line's queue id.
  EXPECT_EQ(log.find("NOQUEUE: command="), std::string::npos) << log;
}

TEST_F(DovecotAuthPolicyTest, RedisDownLoginsStillWork) {
  redis_.stop();
  for (int i = 0; i < 8; ++i) dovecot_->login("bob", "nope", "127.0.0.2");
  auto r = dovecot_->login("bob", "bob-pw", "127.0.0.2");
  EXPECT_TRUE(r.ok) << r.response;
  EXPECT_NE(daemon_.log().find("Redis unavailable, login allowed"), std::string::npos);
}

TEST_F(DovecotAuthPolicyTest, WrongApiHeaderIsRefusedAndDovecotFailsOpen) {
  DovecotServer::Options o;
  o.policy_url = "http://127.0.0.1:" + std::to_string(port_) + "/";
  o.policy_api_header = "X-API-Key: wrong";
  DovecotServer other(o);
  auto r = other.login("alice", "alice-pw", "127.0.0.2");
  // auth_policy_reject_on_fail = no (default): a failed policy request does not block logins.
  EXPECT_TRUE(r.ok) << r.response;
  EXPECT_EQ(daemon_.log().find("command=allow"), std::string::npos);
}

}  // namespace
}  // namespace mxguard::testing
