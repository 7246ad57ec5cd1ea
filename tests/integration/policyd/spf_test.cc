// SPF in mxguard-policyd against a real DNS server (and Redis for greylisting): actions,
// headers one per reply, the per-message cache, time budgets, and pool-tolerant greylisting.
#include <gtest/gtest.h>

#include <atomic>

#include "policyd/policy_service.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::policyd {
namespace {

using common::policy::Request;

const char* kZone = R"(
$ORIGIN example.test.
$TTL 60
@          IN SOA ns1 hostmaster 1 3600 600 86400 60
pass       IN TXT "v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/24 -all"
fail       IN TXT "v=spf1 ip4:192.0.2.0/24 -all exp=why.example.test"
why        IN TXT "%{i} may not send for %{d}"
soft       IN TXT "v=spf1 ~all"
badhelo    IN TXT "v=spf1 -all"
goodhelo   IN TXT "v=spf1 a -all"
goodhelo   IN A   198.51.100.7
partner    IN TXT "v=spf1 ip4:192.0.2.0/25 -all"
!timeout slow.example.test.
)";

class SpfServiceTest : public ::testing::Test {
 protected:
  SpfServiceTest() : dns_(kZone) {}

  Options options(const std::string& checks = "spf") {
    Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(testing::free_tcp_port());
    o.redis.url = redis_.url();
    o.checks = common::config::split_list(checks);
    o.dns.servers = {dns_.server_spec()};
    o.dns.timeout = std::chrono::seconds(2);
    o.greylist.whitelist_clients.clear();
    o.greylist.whitelist_recipients.clear();
    o.greylist.hostname = "mx.test";
    o.spf.authserv_id = "mx.test";
    return o;
  }

  std::unique_ptr<PolicyService> service(const Options& o) {
    return std::make_unique<PolicyService>(o, [this] { return now_.load(); });
  }

  static Request request(const std::string& ip, const std::string& helo, const std::string& sender,
                         const std::string& rcpt, const std::string& instance,
                         const std::string& state = "RCPT") {
    Request r;
    r.set("request", "smtpd_access_policy");
    r.set("protocol_state", state);
    r.set("client_address", ip);
    r.set("client_name", "unknown");
    r.set("helo_name", helo);
    r.set("sender", sender);
    r.set("recipient", rcpt);
    r.set("instance", instance);
    return r;
  }

  testing::DnsServer dns_;
  testing::RedisServer redis_;
  std::atomic<std::int64_t> now_{1'700'000'000};
};

TEST_F(SpfServiceTest, FailIsRejectedWithTheRecordsExplanation) {
  auto svc = service(options());
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@fail.example.test",
                                "b@r.example", "m1")),
            "550 5.7.23 Message rejected due to SPF fail: 198.51.100.7 may not send for "
            "fail.example.test");
  // Every recipient of that message gets the same answer, without asking DNS again.
  int queries = dns_.queries_for("fail.example.test.");
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@fail.example.test",
                                "c@r.example", "m1"))
                .rfind("550 5.7.23", 0),
            0u);
  EXPECT_EQ(dns_.queries_for("fail.example.test."), queries);
}

TEST_F(SpfServiceTest, PassAddsOneHeaderPerReplyAndChecksOncePerMessage) {
  auto o = options();
  o.spf.header = "both";
  auto svc = service(o);
  std::string first = svc->handle(
      request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test", "b@r.example", "m2"));
  EXPECT_EQ(first.rfind("PREPEND Received-SPF: pass (domain of a@pass.example.test designates "
                        "198.51.100.7 as permitted sender) client-ip=198.51.100.7;",
                        0),
            0u)
      << first;
  int queries = dns_.queries_for("pass.example.test.");
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test",
                                "c@r.example", "m2")),
            "PREPEND Authentication-Results: mx.test; spf=pass smtp.mailfrom=pass.example.test");
  EXPECT_EQ(dns_.queries_for("pass.example.test."), queries) << "SPF evaluated twice";
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test", "",
                                "m2", "DATA")),
            "DUNNO");
}

TEST_F(SpfServiceTest, SecondHeaderGoesOutAtData) {
  auto o = options();
  o.spf.header = "both";
  auto svc = service(o);
  svc->handle(
      request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test", "b@r.example", "m3"));
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test", "",
                                "m3", "DATA")),
            "PREPEND Authentication-Results: mx.test; spf=pass smtp.mailfrom=pass.example.test");
}

TEST_F(SpfServiceTest, HeloFailAndNullSender) {
  auto svc = service(options());
  EXPECT_EQ(svc->handle(request("198.51.100.7", "badhelo.example.test", "a@pass.example.test",
                                "b@r.example", "m4")),
            "550 5.7.23 Message rejected due to SPF fail of the HELO name: 198.51.100.7 is not "
            "one of badhelo.example.test's designated mail servers.");
  std::string bounce =
      svc->handle(request("198.51.100.7", "goodhelo.example.test", "", "b@r.example", "m5"));
  EXPECT_EQ(bounce.rfind("PREPEND Received-SPF: pass (domain of goodhelo.example.test "
                         "designates 198.51.100.7 as permitted sender)",
                         0),
            0u)
      << bounce;
  EXPECT_NE(bounce.find("identity=helo;"), std::string::npos);
  // An address literal as HELO is "none" without any DNS query.
  std::string literal = svc->handle(
      request("198.51.100.7", "[198.51.100.7]", "a@soft.example.test", "b@r.example", "m6"));
  EXPECT_EQ(literal.rfind("PREPEND Received-SPF: softfail", 0), 0u) << literal;
}

TEST_F(SpfServiceTest, TemperrorIsAcceptedOrDeferredAsConfiguredWithinTheBudget) {
  auto o = options();
  o.dns.timeout = std::chrono::milliseconds(300);
  o.spf.timeout = common::config::Duration(std::chrono::seconds(1));
  o.spf.helo_reject = "no-check";
  auto svc = service(o);
  auto t0 = std::chrono::steady_clock::now();
  std::string accepted = svc->handle(
      request("198.51.100.7", "goodhelo.example.test", "a@slow.example.test", "b@r.example", "m7"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(accepted.rfind("PREPEND Received-SPF: temperror", 0), 0u) << accepted;
  o.spf.temperror_defer = true;
  auto strict = service(o);
  EXPECT_EQ(strict->handle(request("198.51.100.7", "goodhelo.example.test", "a@slow.example.test",
                                   "b@r.example", "m8")),
            "451 4.7.24 SPF temporary error: DNS timeout for slow.example.test");
}

TEST_F(SpfServiceTest, SpfFailRejectsBeforeGreylisting) {
  auto svc = service(options("spf, greylist"));
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@fail.example.test",
                                "b@r.example", "m9"))
                .rfind("550 5.7.23", 0),
            0u);
  common::redis::Pool pool(options().redis);
  EXPECT_EQ(pool.command({"DBSIZE"}).as_integer(), 0) << "a rejected message was greylisted";
}

TEST_F(SpfServiceTest, PoolTolerantGreylistingFollowsTheSenderDomain) {
  auto o = options("spf, greylist");
  o.greylist.spf_pass_by_domain = true;
  o.greylist.delay = common::config::Duration(std::chrono::seconds(60));
  auto svc = service(o);
  EXPECT_EQ(svc->handle(request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test",
                                "b@r.example", "p1"))
                .rfind("DEFER_IF_PERMIT", 0),
            0u);
  now_ += 61;
  // The retry comes from another network of the sender's outbound pool: it passes.
  std::string retry = svc->handle(
      request("203.0.113.9", "pool.example.test", "a@pass.example.test", "b@r.example", "p2"));
  EXPECT_EQ(retry.rfind("PREPEND Received-SPF: pass", 0), 0u) << retry;
  // The X-Greylist header waits for the next reply of that message.
  EXPECT_EQ(svc->handle(request("203.0.113.9", "pool.example.test", "a@pass.example.test", "", "p2",
                                "DATA"))
                .rfind("PREPEND X-Greylist: delayed 61 seconds", 0),
            0u);

  auto plain = o;
  plain.greylist.spf_pass_by_domain = false;
  plain.redis.prefix = "other:";
  auto svc2 = service(plain);
  svc2->handle(
      request("198.51.100.7", "goodhelo.example.test", "a@pass.example.test", "b@r.example", "q1"));
  now_ += 61;
  EXPECT_EQ(svc2->handle(request("203.0.113.9", "pool.example.test", "a@pass.example.test",
                                 "b@r.example", "q2"))
                .rfind("DEFER_IF_PERMIT", 0),
            0u)
      << "without the option a new network is greylisted again";
}

TEST_F(SpfServiceTest, SkippedAndWhitelistedClientsAreNotChecked) {
  auto o = options();
  o.spf.whitelist = {"192.0.2.0/24"};
  o.trusted_networks = {"::1"};
  auto svc = service(o);
  EXPECT_EQ(svc->handle(request("127.0.0.5", "badhelo.example.test", "a@fail.example.test",
                                "b@r.example", "s1")),
            "DUNNO");
  EXPECT_EQ(svc->handle(request("192.0.2.77", "badhelo.example.test", "a@fail.example.test",
                                "b@r.example", "s2")),
            "DUNNO");
}

TEST_F(SpfServiceTest, DomainWhitelistSkipsClientsAuthorisedByAPartnerDomain) {
  auto o = options();
  o.spf.domain_whitelist = {"nothere.example.test", "partner.example.test"};
  auto svc = service(o);
  // Authorised by partner.example.test's SPF: not checked further, no header.
  EXPECT_EQ(svc->handle(request("192.0.2.9", "badhelo.example.test", "a@fail.example.test",
                                "b@r.example", "w1")),
            "DUNNO");
  // Not authorised by any listed domain: checked as usual.
  EXPECT_EQ(svc->handle(request("192.0.2.200", "goodhelo.example.test", "a@fail.example.test",
                                "b@r.example", "w2"))
                .rfind("550 5.7.23", 0),
            0u);
}

}  // namespace
}  // namespace mxguard::policyd
