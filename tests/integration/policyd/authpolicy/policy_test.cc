// Integration tests for policyd/authpolicy/policy.cc on a private redis-server with an injected
// clock: tarpit then block per address, network and login, the same wrong password retried, allowed
// networks, reset on success, and Redis down → allow.
#include "policyd/authpolicy/policy.h"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/fixtures/redis_server.h"

namespace mxguard::policyd::authpolicy {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

class AuthPolicyTest : public ::testing::Test {
 protected:
  AuthPolicyTest() {
    options_.redis.url = redis_.url();
    options_.redis.command_timeout = 2000ms;
    options_.allow_networks = {"10.0.0.0/8"};
    options_.ip_tarpit = {"3/10m"};
    options_.ip_limits = {"6/10m"};
    options_.net_tarpit = {"20/10m"};
    options_.net_limits = {"40/10m"};
    options_.login_tarpit = {"10/10m"};
    options_.repeat_tarpit = {"5/1h"};
    pool_ = std::make_unique<common::redis::Pool>(options_.redis);
  }
  Policy policy() {
    return Policy(options_, *pool_, [this] { return now_.load(); });
  }
  static AuthRequest req(AuthRequest::Command c, std::string remote, std::string login = "alice",
                         std::string pwhash = "") {
    AuthRequest r;
    r.command = c;
    r.remote = std::move(remote);
    r.login = std::move(login);
    r.pwhash = std::move(pwhash);
    r.protocol = "imap";
    return r;
  }
  static AuthRequest allow(std::string remote, std::string login = "alice") {
    return req(AuthRequest::Command::kAllow, std::move(remote), std::move(login));
  }
  static AuthRequest fail(std::string remote, std::string login = "alice",
                          std::string pwhash = "") {
    return req(AuthRequest::Command::kReport, std::move(remote), std::move(login),
               std::move(pwhash));
  }

  RedisServer redis_;
  Options options_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::atomic<std::int64_t> now_{1'699'999'200'000};
};

TEST_F(AuthPolicyTest, TarpitThenBlockPerAddress) {
  auto p = policy();
  EXPECT_EQ(p.decide(allow("192.0.2.1")).status, 0);
  for (int i = 0; i < 2; ++i) p.decide(fail("192.0.2.1", "u" + std::to_string(i)));
  EXPECT_EQ(p.decide(allow("192.0.2.1")).status, 0);
  p.decide(fail("192.0.2.1", "u2"));  // 3 failures: tarpit threshold reached
  auto v = p.decide(allow("192.0.2.1", "new"));
  EXPECT_EQ(v.status, 2);
  EXPECT_EQ(v.result, "tarpit");
  p.decide(fail("192.0.2.1", "u3"));
  EXPECT_EQ(p.decide(allow("192.0.2.1", "new")).status, 4);  // grows per failure
  for (int i = 4; i < 6; ++i) p.decide(fail("192.0.2.1", "u" + std::to_string(i)));
  EXPECT_EQ(p.decide(allow("192.0.2.1", "new")).status, 8);
  v = p.decide(fail("192.0.2.1", "u6"));  // 7 > 6/10m: blocked
  EXPECT_EQ(v.result, "blocked");
  v = p.decide(allow("192.0.2.1", "new"));
  EXPECT_EQ(v.status, -1);
  EXPECT_EQ(v.msg, options_.reject_message);
  // Another address of the same /24 is only counted for the network.
  EXPECT_EQ(p.decide(allow("192.0.2.2", "new")).status, 0);
  now_ += 3'600'000 + 1;  // block-time 1h is over, the windows too
  EXPECT_EQ(p.decide(allow("192.0.2.1", "new")).status, 0);
}

TEST_F(AuthPolicyTest, MaxDelayCapsTheTarpit) {
  options_.ip_limits = {"100/10m"};
  options_.tarpit_max_delay = 5s;
  auto p = policy();
  for (int i = 0; i < 30; ++i) p.decide(fail("192.0.2.9", "u" + std::to_string(i)));
  EXPECT_EQ(p.decide(allow("192.0.2.9")).status, 5);
}

TEST_F(AuthPolicyTest, NetworkIsCountedAcrossAddresses) {
  options_.net_tarpit = {"4/10m"};
  options_.net_limits = {"8/10m"};
  auto p = policy();
  for (int i = 0; i < 9; ++i) p.decide(fail("198.51.100." + std::to_string(i + 1), "x"));
  auto v = p.decide(allow("198.51.100.200", "y"));
  EXPECT_EQ(v.status, -1);
  EXPECT_NE(v.reason.find("net"), std::string::npos) << v.reason;
  EXPECT_EQ(p.decide(allow("198.51.101.1", "y")).status, 0);
}

TEST_F(AuthPolicyTest, Ipv6UsesTheConfiguredPrefix) {
  options_.net_tarpit = {"2/10m"};
  auto p = policy();
  p.decide(fail("2001:db8:0:1::1", "x"));
  p.decide(fail("2001:db8:0:1:ffff::2", "x"));
  EXPECT_EQ(p.decide(allow("2001:db8:0:1::99", "z")).status, 2);
  EXPECT_EQ(p.decide(allow("2001:db8:0:2::1", "z")).status, 0);
}

TEST_F(AuthPolicyTest, LoginIsTarpittedFromEveryAddress) {
  auto p = policy();
  for (int i = 0; i < 10; ++i) p.decide(fail("203.0.113." + std::to_string(i * 20), "bob"));
  auto v = p.decide(allow("192.0.2.200", "BOB"));
  EXPECT_EQ(v.status, 2);
  EXPECT_NE(v.reason.find("login"), std::string::npos);
  EXPECT_EQ(p.decide(allow("192.0.2.200", "carol")).status, 0);
}

TEST_F(AuthPolicyTest, SameWrongPasswordIsOneFailure) {
  auto p = policy();
  // A phone retrying a stale password: one failure for the address, tarpitted only after
  // repeat-tarpit (5/1h) attempts.
  for (int i = 0; i < 5; ++i) {
    auto v = p.decide(fail("192.0.2.50", "alice", "a3f"));
    EXPECT_EQ(v.result, i == 0 ? "counted" : "repeat") << i;
  }
  AuthRequest a = allow("192.0.2.50");
  a.pwhash = "a3f";
  EXPECT_EQ(p.decide(a).status, 2);  // repeat-tarpit reached for this password
  a.pwhash = "b00";
  EXPECT_EQ(p.decide(a).status, 0);  // the address has one failure only
  p.decide(fail("192.0.2.50", "alice", "b01"));
  p.decide(fail("192.0.2.50", "alice", "b02"));
  EXPECT_EQ(p.decide(a).status, 2);  // three different passwords: ip-tarpit 3/10m
}

TEST_F(AuthPolicyTest, AllowedNetworksAreNeverLimited) {
  auto p = policy();
  for (int i = 0; i < 20; ++i) p.decide(fail("10.1.2.3"));
  auto v = p.decide(allow("10.1.2.3"));
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.result, "allowlisted");
  EXPECT_EQ(pool_->command({"DBSIZE"}).as_integer(), 0);
}

TEST_F(AuthPolicyTest, SuccessResetsTheAddressButNotABlock) {
  auto p = policy();
  for (int i = 0; i < 3; ++i) p.decide(fail("192.0.2.60", "u" + std::to_string(i)));
  EXPECT_EQ(p.decide(allow("192.0.2.60", "v")).status, 2);
  AuthRequest ok = req(AuthRequest::Command::kReport, "192.0.2.60", "alice");
  ok.success = true;
  EXPECT_EQ(p.decide(ok).result, "success");
  EXPECT_EQ(p.decide(allow("192.0.2.60", "v")).status, 0);
  for (int i = 0; i < 7; ++i) p.decide(fail("192.0.2.60", "w" + std::to_string(i)));
  EXPECT_EQ(p.decide(allow("192.0.2.60", "v")).status, -1);
  p.decide(ok);
  EXPECT_EQ(p.decide(allow("192.0.2.60", "v")).status, -1);

  options_.reset_on_success = false;
  auto keep = policy();
  for (int i = 0; i < 3; ++i) keep.decide(fail("192.0.2.61", "u" + std::to_string(i)));
  ok.remote = "192.0.2.61";
  keep.decide(ok);
  EXPECT_EQ(keep.decide(allow("192.0.2.61", "v")).status, 2);
}

TEST_F(AuthPolicyTest, OwnRejectsAndInternalFailuresAreNotCounted) {
  auto p = policy();
  for (int i = 0; i < 10; ++i) {
    AuthRequest r = fail("192.0.2.70", "u" + std::to_string(i));
    r.policy_reject = (i % 2 == 0);
    r.fail_type = (i % 2 == 1) ? "internal" : "";
    EXPECT_EQ(p.decide(r).result, "ignored");
  }
  EXPECT_EQ(p.decide(allow("192.0.2.70")).status, 0);
}

TEST_F(AuthPolicyTest, LoginLimitsBlockWhenConfigured) {
  options_.login_limits = {"12/10m"};
  auto p = policy();
  for (int i = 0; i < 13; ++i) p.decide(fail("203.0.113." + std::to_string(i * 10), "dave"));
  EXPECT_EQ(p.decide(allow("192.0.2.99", "dave")).status, -1);
}

TEST_F(AuthPolicyTest, ReportBatchCountsLikeSingleReports) {
  auto p = policy();
  std::vector<AuthRequest> batch;
  for (int i = 0; i < 7; ++i) batch.push_back(fail("192.0.2.90", "u" + std::to_string(i)));
  batch.push_back(fail("192.0.2.91", "alice", "a3f"));
  batch.push_back(fail("192.0.2.91", "alice", "a3f"));  // the same password again
  batch.push_back(fail("10.0.0.1"));                    // allow-networks
  AuthRequest ok = req(AuthRequest::Command::kReport, "192.0.2.92", "bob");
  ok.success = true;
  batch.push_back(ok);
  pool_->command({"SCRIPT", "FLUSH"});  // the batch loads the script itself
  auto v = p.report_batch(batch);
  ASSERT_EQ(v.size(), batch.size());
  EXPECT_EQ(v[0].result, "counted");
  EXPECT_EQ(v[6].result, "blocked");
  EXPECT_EQ(v[7].result, "counted");
  EXPECT_EQ(v[8].result, "repeat");
  EXPECT_EQ(v[9].result, "allowlisted");
  EXPECT_EQ(v[10].result, "success");
  EXPECT_EQ(p.decide(allow("192.0.2.90")).status, -1);
  redis_.stop();
  v = p.report_batch({fail("192.0.2.93")});
  EXPECT_EQ(v[0].result, "store-error");
}

TEST_F(AuthPolicyTest, RedisDownAllows) {
  auto p = policy();
  for (int i = 0; i < 7; ++i) p.decide(fail("192.0.2.80", "u" + std::to_string(i)));
  EXPECT_EQ(p.decide(allow("192.0.2.80")).status, -1);
  redis_.stop();
  auto v = p.decide(allow("192.0.2.80"));
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.result, "store-error");
  EXPECT_EQ(p.decide(fail("192.0.2.80")).result, "store-error");
}

}  // namespace
}  // namespace mxguard::policyd::authpolicy
