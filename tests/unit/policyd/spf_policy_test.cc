// The SPF policy matrix (pypolicyd-spf's options) and the header formats, without DNS.
#include "policyd/spf_policy.h"

#include <gtest/gtest.h>

#include "common/authres/authres.h"
#include "common/config/config.h"

namespace mxguard::policyd {
namespace {

using common::spf::Outcome;
using common::spf::Result;

Outcome outcome(Result r, std::string explanation = "", std::string mechanism = "") {
  Outcome o;
  o.result = r;
  o.explanation = std::move(explanation);
  o.mechanism = std::move(mechanism);
  if (r == Result::kPermerror) o.problem = "more than one SPF record";
  if (r == Result::kTemperror) o.problem = "DNS timeout for example.com";
  return o;
}

SpfResults results(std::optional<Outcome> helo, std::optional<Outcome> mf,
                   std::string sender = "alice@example.com") {
  SpfResults r;
  r.helo = std::move(helo);
  r.mail_from = std::move(mf);
  r.helo_name = "mail.example.com";
  r.sender = std::move(sender);
  r.client = *common::net::IpAddress::parse("192.0.2.1");
  return r;
}

TEST(SpfPolicyTest, MailFromFailRejectsWithTheExplanationAndRfc7372Code) {
  SpfOptions o;
  auto v = decide(o, results(outcome(Result::kNone), outcome(Result::kFail, "Go away")), "mx");
  EXPECT_EQ(v.action, "550 5.7.23 Message rejected due to SPF fail: Go away");
  EXPECT_EQ(v.summary, "helo=none mailfrom=fail");
}

TEST(SpfPolicyTest, HeloFailRejectsFirst) {
  SpfOptions o;
  auto v = decide(o, results(outcome(Result::kFail, "bad helo"), outcome(Result::kPass)), "mx");
  EXPECT_EQ(v.action, "550 5.7.23 Message rejected due to SPF fail of the HELO name: bad helo");
}

TEST(SpfPolicyTest, RejectPoliciesFollowPypolicydSpf) {
  struct Case {
    std::string helo_policy, mf_policy;
    Result helo, mf;
    std::string sender;
    bool rejected;
  };
  std::vector<Case> cases = {
      {"fail", "fail", Result::kSoftfail, Result::kSoftfail, "a@x.example", false},
      {"softfail", "fail", Result::kSoftfail, Result::kPass, "a@x.example", true},
      {"fail", "softfail", Result::kPass, Result::kSoftfail, "a@x.example", true},
      {"no", "no", Result::kFail, Result::kFail, "a@x.example", false},
      {"null", "no", Result::kFail, Result::kPass, "a@x.example", false},
      {"null", "no", Result::kFail, Result::kPass, "", true},
      {"not-pass", "no", Result::kNeutral, Result::kPass, "a@x.example", true},
      {"not-pass", "no", Result::kNone, Result::kPass, "a@x.example", false},
      {"not-pass", "no", Result::kTemperror, Result::kPass, "a@x.example", false},
  };
  for (const auto& c : cases) {
    SpfOptions o;
    o.helo_reject = c.helo_policy;
    o.mail_from_reject = c.mf_policy;
    auto r = results(outcome(c.helo),
                     c.sender.empty() ? std::nullopt : std::optional(outcome(c.mf)), c.sender);
    EXPECT_EQ(!decide(o, r, "mx").action.empty(), c.rejected)
        << c.helo_policy << "/" << c.mf_policy << " sender=" << c.sender;
  }
}

TEST(SpfPolicyTest, ErrorsAreAcceptedUnlessConfigured) {
  SpfOptions o;
  EXPECT_TRUE(decide(o, results(std::nullopt, outcome(Result::kPermerror)), "mx").action.empty());
  EXPECT_TRUE(decide(o, results(std::nullopt, outcome(Result::kTemperror)), "mx").action.empty());
  o.permerror_reject = true;
  o.temperror_defer = true;
  EXPECT_EQ(decide(o, results(std::nullopt, outcome(Result::kPermerror)), "mx").action,
            "550 5.7.24 SPF permanent error: more than one SPF record");
  EXPECT_EQ(decide(o, results(std::nullopt, outcome(Result::kTemperror)), "mx").action,
            "451 4.7.24 SPF temporary error: DNS timeout for example.com");
}

TEST(SpfPolicyTest, ReceivedSpfFollowsRfc7208Section9) {
  SpfOptions o;
  o.hide_receiver = false;
  auto v = decide(o, results(std::nullopt, outcome(Result::kPass, "", "ip4:192.0.2.0/24")),
                  "mx.example.org");
  ASSERT_EQ(v.headers.size(), 1u);
  EXPECT_EQ(v.headers[0],
            "Received-SPF: pass (mx.example.org: domain of alice@example.com designates "
            "192.0.2.1 as permitted sender) client-ip=192.0.2.1; "
            "envelope-from=\"alice@example.com\"; helo=\"mail.example.com\"; "
            "receiver=mx.example.org; identity=mailfrom; mechanism=\"ip4:192.0.2.0/24\";");
  EXPECT_EQ(v.passed_domain, "example.com");
  o.hide_receiver = true;
  v = decide(o, results(std::nullopt, outcome(Result::kSoftfail)), "mx.example.org");
  EXPECT_EQ(v.headers[0].find("mx.example.org"), std::string::npos);
  EXPECT_NE(v.headers[0].find("softfail (domain of transitioning alice@example.com"),
            std::string::npos);
  EXPECT_TRUE(v.passed_domain.empty());
}

TEST(SpfPolicyTest, BothHeadersAndAuthenticationResultsParse) {
  SpfOptions o;
  o.header = "both";
  auto v = decide(o, results(std::nullopt, outcome(Result::kPass)), "mx.example.org");
  ASSERT_EQ(v.headers.size(), 2u);
  EXPECT_EQ(v.headers[1],
            "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.com");
  auto parsed = common::authres::parse(v.headers[1]);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->results.at(0).result, "pass");
  o.header = "none";
  EXPECT_TRUE(decide(o, results(std::nullopt, outcome(Result::kPass)), "mx").headers.empty());
}

TEST(SpfPolicyTest, NullSenderUsesTheHeloIdentity) {
  SpfOptions o;
  o.header = "authentication-results";
  auto v = decide(o, results(outcome(Result::kPass), std::nullopt, ""), "mx");
  ASSERT_EQ(v.headers.size(), 1u);
  EXPECT_EQ(v.headers[0], "Authentication-Results: mx; spf=pass smtp.helo=mail.example.com");
  EXPECT_TRUE(v.passed_domain.empty());  // pool-tolerant greylisting needs a MAIL FROM pass
}

TEST(SpfPolicyTest, HostileInputNeverBreaksTheHeaderLine) {
  SpfOptions o;
  auto r =
      results(std::nullopt, outcome(Result::kFail, "line\r\nX-Injected: yes"), "a\"b@x.example");
  o.mail_from_reject = "no";
  auto v = decide(o, r, "mx");
  ASSERT_EQ(v.headers.size(), 1u);
  EXPECT_EQ(v.headers[0].find('\n'), std::string::npos);
  EXPECT_NE(v.headers[0].find("envelope-from=\"a\\\"b@x.example\""), std::string::npos);
  o.mail_from_reject = "fail";
  EXPECT_EQ(decide(o, r, "mx").action.find('\n'), std::string::npos);
}

// Issue 15, finding 5: a quoted local part that closes the comment used to add its own
// key=value pairs ("client-ip=1.2.3.4") to Received-SPF. Now the comment keeps it as
// quoted-pairs, and the header parses to exactly the pairs we wrote.
TEST(SpfPolicyTest, LocalPartCannotInjectReceivedSpfPairs) {
  SpfOptions o;
  o.hide_receiver = false;
  auto r = results(std::nullopt, outcome(Result::kPass, "", "a"),
                   "\"a) client-ip=1.2.3.4; x=(b\"@d.example");
  auto v = decide(o, r, "mx.example.org");
  ASSERT_EQ(v.headers.size(), 1u);
  const std::string& h = v.headers[0];
  EXPECT_NE(h.find("(mx.example.org: domain of \"a\\) client-ip=1.2.3.4; x=\\(b\"@d.example "
                   "designates 192.0.2.1 as permitted sender) client-ip=192.0.2.1;"),
            std::string::npos)
      << h;
  // Outside comments and quoted strings, client-ip appears once and is the real one.
  std::string outside;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (h[i] == '\\' && (depth > 0 || quoted)) {
      ++i;
      continue;
    }
    if (quoted) {
      quoted = h[i] != '"';
    } else if (h[i] == '(') {
      ++depth;
    } else if (h[i] == ')') {
      --depth;
    } else if (depth == 0) {
      quoted = h[i] == '"';
      if (!quoted) outside.push_back(h[i]);
    }
  }
  EXPECT_EQ(depth, 0) << h;
  EXPECT_FALSE(quoted) << h;
  auto first = outside.find("client-ip=");
  ASSERT_NE(first, std::string::npos) << outside;
  EXPECT_EQ(outside.find("client-ip=", first + 1), std::string::npos) << outside;
  EXPECT_EQ(outside.find("x="), std::string::npos) << outside;
  EXPECT_NE(outside.find("client-ip=192.0.2.1;"), std::string::npos) << outside;
}

TEST(SpfPolicyTest, OptionsAreValidated) {
  SpfOptions o;
  EXPECT_NO_THROW(o.validate());
  o.helo_reject = "sometimes";
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = SpfOptions{};
  o.header = "all";
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = SpfOptions{};
  o.timeout = common::config::Duration(std::chrono::seconds(120));
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = SpfOptions{};
  o.whitelist = {"not-a-network"};
  EXPECT_THROW(o.validate(), common::config::OptionError);
}

}  // namespace
}  // namespace mxguard::policyd
