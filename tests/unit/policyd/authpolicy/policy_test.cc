// Unit tests for policyd/authpolicy/policy.cc without Redis: Dovecot's request attributes and keys.
#include "policyd/authpolicy/policy.h"

#include <gtest/gtest.h>

namespace mxguard::policyd::authpolicy {
namespace {

TEST(AuthPolicyRequest, ParsesDovecotDefaultAttributes) {
  // What Dovecot 2.3 sends with the default auth_policy_request_attributes.
  auto r =
      parse_request("allow", R"({"login":"alice","pwhash":"a3f","remote":"192.0.2.7",)"
                             R"("device_id":"","protocol":"imap","session_id":"Bx2Tz/8AAAE"})");
  EXPECT_EQ(r.command, AuthRequest::Command::kAllow);
  EXPECT_EQ(r.login, "alice");
  EXPECT_EQ(r.pwhash, "a3f");
  EXPECT_EQ(r.remote, "192.0.2.7");
  EXPECT_EQ(r.protocol, "imap");
  EXPECT_EQ(r.session_id, "Bx2Tz/8AAAE");
  EXPECT_FALSE(r.success);
}

TEST(AuthPolicyRequest, ParsesReportAttributes) {
  auto r =
      parse_request("report", R"({"login":"a","remote":"::1","success":false,)"
                              R"("policy_reject":true,"fail_type":"credentials","tls":"true"})");
  EXPECT_EQ(r.command, AuthRequest::Command::kReport);
  EXPECT_FALSE(r.success);
  EXPECT_TRUE(r.policy_reject);
  EXPECT_TRUE(r.tls);
  EXPECT_EQ(r.fail_type, "credentials");
  EXPECT_TRUE(parse_request("report", R"({"success":true})").success);
}

TEST(AuthPolicyRequest, IgnoresExtraAndNestedAttributes) {
  auto r = parse_request("allow", R"({"login":"a","attrs":{"cos":"premium"},"n":null})");
  EXPECT_EQ(r.login, "a");
}

TEST(AuthPolicyRequest, RejectsWhatIsNotARequest) {
  EXPECT_THROW(parse_request("allow", "not json"), RequestError);
  EXPECT_THROW(parse_request("allow", "[1,2]"), RequestError);
  EXPECT_THROW(parse_request("allow", R"({"login":{"x":1}})"), RequestError);
  EXPECT_THROW(parse_request("delete", "{}"), RequestError);
  EXPECT_THROW(parse_request("", "{}"), RequestError);
  EXPECT_THROW(parse_request("report", R"({"success":[]})"), RequestError);
}

TEST(AuthPolicyRequest, CutsLongFields) {
  auto r = parse_request("allow", R"({"login":")" + std::string(5000, 'x') + R"("})");
  EXPECT_EQ(r.login.size(), kMaxFieldLength);
}

TEST(AuthPolicyKeys, Layout) {
  auto v4 = *common::net::IpAddress::parse("192.0.2.77");
  auto v6 = *common::net::IpAddress::parse("2001:db8:1:2:3::9");
  EXPECT_EQ(ip_key(v4), "ap:ip:192.0.2.77");
  EXPECT_EQ(net_key(v4, 24, 64), "ap:net:192.0.2.0/24");
  EXPECT_EQ(net_key(v6, 24, 64), "ap:net:2001:db8:1:2::/64");
  EXPECT_EQ(login_key("Alice@Example.ORG"), "ap:login:alice@example.org");
  EXPECT_EQ(login_key("a}b").substr(0, 11), "ap:login:h:");
  EXPECT_EQ(pair_key("Alice", "abc"), pair_key("alice", "abc"));
  EXPECT_NE(pair_key("alice", "abc"), pair_key("alice", "abd"));
}

}  // namespace
}  // namespace mxguard::policyd::authpolicy
