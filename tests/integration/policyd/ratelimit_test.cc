// mxguard-policyd's `ratelimit` check against a real Redis with an injected clock: recipients
// per SASL user at RCPT, messages at END-OF-MESSAGE, per sender domain for trusted relays,
// users independent, inbound mail untouched, the window sliding, Redis down, one alert per
// window.
#include <gtest/gtest.h>

#include <atomic>

#include "policyd/policy_service.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::policyd {
namespace {

using common::policy::Request;

class RateLimitCheckTest : public ::testing::Test {
 protected:
  Options options() {
    Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(testing::free_tcp_port());
    o.redis.url = redis_.url();
    o.redis.command_timeout = std::chrono::milliseconds(300);
    o.greylist.whitelist_clients = {};
    o.greylist.whitelist_recipients = {};
    o.greylist.hostname = "mx.test";
    o.trusted_networks = {"192.0.2.0/24"};
    o.checks = {"greylist", "ratelimit"};
    o.ratelimit.sasl_recipients = {"3/1h"};
    o.ratelimit.sasl_messages = {"2/1h"};
    o.ratelimit.sender_recipients = {"4/1h"};
    o.ratelimit.sender_messages = {"100/1h"};
    return o;
  }
  std::unique_ptr<PolicyService> service(const Options& o) {
    return std::make_unique<PolicyService>(o, [this] { return now_.load(); });
  }
  static Request request(const std::string& state, const std::string& ip, const std::string& sasl,
                         const std::string& sender = "a@example.org") {
    Request r;
    r.set("request", "smtpd_access_policy");
    r.set("protocol_state", state);
    r.set("client_address", ip);
    r.set("client_name", "unknown");
    r.set("sender", sender);
    r.set("recipient", state == "RCPT" ? "rcpt@dest.example" : "");
    r.set("sasl_username", sasl);
    r.set("recipient_count", state == "END-OF-MESSAGE" ? "1" : "0");
    r.set("size", "1234");
    r.set("queue_id", "Q1");
    r.set("instance", "i" + std::to_string(++counter_));
    return r;
  }

  testing::RedisServer redis_;
  std::atomic<std::int64_t> now_{1'699'999'200};  // an hour boundary
  static inline int counter_ = 0;
};

TEST_F(RateLimitCheckTest, RecipientsPerSaslUserAtRcpt) {
  auto svc = service(options());
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "alice")), "DUNNO");
  std::string over = svc->handle(request("RCPT", "198.51.100.1", "Alice"));
  EXPECT_EQ(over,
            "DEFER_IF_PERMIT Rate limit exceeded for alice (3 recipients per 1h), try again later");
  // Others are unaffected; inbound mail (no SASL, untrusted) is not rate limited (greylisted).
  EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "bob")), "DUNNO");
  EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.9", "")).rfind("DEFER_IF_PERMIT Greylisted", 0),
            0u);
  now_ += 3600 + 1800;  // half of the last window still counts: 1.5 of 3
  EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "alice")), "DUNNO");
  now_ += 1800;
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "alice")), "DUNNO");
}

TEST_F(RateLimitCheckTest, MessagesAtEndOfMessage) {
  auto svc = service(options());
  EXPECT_EQ(svc->handle(request("END-OF-MESSAGE", "198.51.100.1", "carol")), "DUNNO");
  EXPECT_EQ(svc->handle(request("END-OF-MESSAGE", "198.51.100.1", "carol")), "DUNNO");
  EXPECT_EQ(
      svc->handle(request("END-OF-MESSAGE", "198.51.100.1", "carol")).rfind("DEFER_IF_PERMIT ", 0),
      0u);
  // Messages and recipients are separate counters.
  EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "carol")), "DUNNO");
  // END-OF-MESSAGE from an inbound client is not counted.
  EXPECT_EQ(svc->handle(request("END-OF-MESSAGE", "198.51.100.7", "")), "DUNNO");
}

TEST_F(RateLimitCheckTest, EndOfMessageDecisionLogsRecipientCountAndSize) {
  auto svc = service(options());
  ::testing::internal::CaptureStderr();
  svc->handle(request("END-OF-MESSAGE", "198.51.100.1", "gina"));
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("Q1: check=ratelimit result="), std::string::npos) << log;
  EXPECT_NE(log.find("messages within limits (recipient_count=1 size=1234)"), std::string::npos)
      << log;
}

TEST_F(RateLimitCheckTest, SenderDomainForTrustedRelays) {
  auto svc = service(options());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(
        svc->handle(request("RCPT", "192.0.2.10", "", "u" + std::to_string(i) + "@Corp.example")),
        "DUNNO");
  }
  EXPECT_EQ(
      svc->handle(request("RCPT", "192.0.2.11", "", "x@corp.example")).rfind("DEFER_IF_PERMIT", 0),
      0u);
  EXPECT_EQ(svc->handle(request("RCPT", "192.0.2.11", "", "x@other.example")), "DUNNO");
  EXPECT_EQ(svc->handle(request("RCPT", "192.0.2.11", "", "")), "DUNNO");  // bounces pass
}

TEST_F(RateLimitCheckTest, ConfiguredActionAndText) {
  auto o = options();
  o.ratelimit.action = "REJECT";
  o.ratelimit.text = "slow down %u";
  o.ratelimit.sasl_recipients = {"1/1m"};
  auto svc = service(o);
  svc->handle(request("RCPT", "198.51.100.1", "dave"));
  EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "dave")), "REJECT slow down dave");
  // A user name with the template's own escapes is inserted as it is, once (it once looped).
  o.ratelimit.text = "%u over %l, %%u";
  svc = service(o);
  svc->handle(request("RCPT", "198.51.100.1", "m%u%l"));
  EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "m%u%l")),
            "REJECT m%u%l over 1 recipients per 1m, %u");
}

TEST_F(RateLimitCheckTest, WithoutTheCheckNothingIsCounted) {
  auto o = options();
  o.checks = {"greylist"};
  auto svc = service(o);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(svc->handle(request("RCPT", "198.51.100.1", "eve")), "DUNNO");
  common::redis::ClientOptions co;
  co.url = redis_.url();
  common::redis::Pool pool(co);
  EXPECT_EQ(pool.command({"DBSIZE"}).as_integer(), 0);
}

TEST_F(RateLimitCheckTest, RedisDownFollowsOnStoreError) {
  auto o = options();
  auto open = service(o);
  o.ratelimit.on_store_error = "defer";
  auto closed = service(o);
  redis_.stop();
  EXPECT_EQ(open->handle(request("RCPT", "198.51.100.1", "frank")), "DUNNO");
  EXPECT_EQ(closed->handle(request("RCPT", "198.51.100.1", "frank")),
            "DEFER_IF_PERMIT 4.3.0 Service temporarily unavailable");
}

TEST_F(RateLimitCheckTest, RejectsUnknownOptions) {
  auto o = options();
  o.ratelimit.sasl_messages = {"ten/1h"};
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = options();
  o.ratelimit.on_store_error = "reject";
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = options();
  EXPECT_NO_THROW(o.validate());
}

}  // namespace
}  // namespace mxguard::policyd
