#include "common/authres/authres.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace mxguard::common::authres {
namespace {

// The 23 cases of tests/data/conformance/authres (python3-authres 1.2.0 as the reference).
TEST(AuthresConformanceTest, MatchesReferenceParser) {
  std::ifstream in(std::string(MXGUARD_SOURCE_DIR) +
                   "/tests/data/conformance/authres/authres-1.2.0-parse-cases.json");
  ASSERT_TRUE(in) << "tests/data/conformance missing";
  auto doc = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    std::string input = c["input"];
    std::string error;
    auto h = parse(input, &error);
    SCOPED_TRACE(input);
    if (c.contains("error")) {
      EXPECT_FALSE(h) << "reference rejects this header";
      EXPECT_TRUE(authserv_id(input).has_value());  // removal still works
      ++checked;
      continue;
    }
    ASSERT_TRUE(h) << error;
    EXPECT_EQ(h->authserv_id, c["authserv_id"].get<std::string>());
    ASSERT_EQ(h->results.size(), c["results"].size());
    for (std::size_t i = 0; i < h->results.size(); ++i) {
      const auto& want = c["results"][i];
      const auto& got = h->results[i];
      EXPECT_EQ(got.method, want["method"].get<std::string>());
      EXPECT_EQ(got.result, want["result"].get<std::string>());
      EXPECT_EQ(got.reason, want["reason"].is_null() ? "" : want["reason"].get<std::string>());
      ASSERT_EQ(got.properties.size(), want["properties"].size());
      for (std::size_t j = 0; j < got.properties.size(); ++j) {
        EXPECT_EQ(got.properties[j].type, want["properties"][j]["type"].get<std::string>());
        EXPECT_EQ(got.properties[j].name, want["properties"][j]["name"].get<std::string>());
        EXPECT_EQ(got.properties[j].value, want["properties"][j]["value"].get<std::string>());
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 23);
}

TEST(AuthresTest, ParsesCommentsVersionsAndQuotedValues) {
  auto h = parse(
      " mx.example.org 1 (our host); dkim/1=pass (2048-bit key) reason=\"good sig\" "
      "header.d=example.net header.i=\"@example.net\"; spf=fail smtp.mailfrom=x@y");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->authserv_id, "mx.example.org");
  EXPECT_EQ(h->version, 1);
  ASSERT_EQ(h->results.size(), 2u);
  EXPECT_EQ(h->results[0].method_version, "1");
  EXPECT_EQ(h->results[0].comment, "(2048-bit key)");
  EXPECT_EQ(h->results[0].reason, "good sig");
  ASSERT_NE(h->results[0].property("header", "i"), nullptr);
  EXPECT_EQ(*h->results[0].property("header", "i"), "@example.net");
  EXPECT_EQ(h->results[1].property("header", "d"), nullptr);
}

TEST(AuthresTest, NoneResultAndFoldedHeader) {
  auto h = parse("example.com; none");
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->results.empty());
  auto folded =
      parse("example.com;\r\n\tdkim=pass header.d=a.example;\r\n spf=pass smtp.mailfrom=a.example");
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->results.size(), 2u);
}

TEST(AuthresTest, RejectsBrokenHeadersWithoutCrashing) {
  for (const char* bad :
       {"", ";", "example.com", "example.com; dkim",
        "example.com; dkim=", "example.com; dkim=pass (unterminated", "example.com; =pass",
        "example.com; dkim=pass header.d=\"open", "example.com; dkim=pass header.=x",
        "(((((((((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))))))) a; none"}) {
    std::string err;
    EXPECT_FALSE(parse(bad, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
}

TEST(AuthresTest, ClaimsAuthservIdComparesNamesOnly) {
  EXPECT_TRUE(claims_authserv_id("MX.Example.ORG; dkim=pass", "mx.example.org"));
  EXPECT_TRUE(
      claims_authserv_id("Authentication-Results: mx.example.org.; spf=pass", "mx.example.org"));
  EXPECT_TRUE(claims_authserv_id(" (comment) \"mx.example.org\"; garbage that does not parse",
                                 "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id("mx.example.org.evil; dkim=pass", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id("other.example; dkim=pass", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id("", "mx.example.org"));
}

TEST(AuthresTest, BuilderOutputParsesBack) {
  Builder b("mx.example.org");
  Result dkim{"dkim",
              "",
              "pass",
              "",
              "",
              {{"header", "d", "example.net"},
               {"header", "i", "@example.net"},
               {"header", "b", "Qgi/FoC0"}}};
  Result dmarc{"dmarc", "", "fail", "", "p=reject dis=reject", {{"header", "from", "example.com"}}};
  Result spf{"spf",      "",
             "softfail", "client (evil) \"quoted\"",
             "",         {{"smtp", "mailfrom", "user name@example.com"}}};
  b.add(dkim).add(dmarc).add(spf);
  std::string v = b.value();
  EXPECT_EQ(v.substr(0, v.find('\n')), "mx.example.org;");
  EXPECT_NE(v.find("dmarc=fail (p=reject dis=reject) header.from=example.com"), std::string::npos)
      << v;
  auto h = parse(v);
  ASSERT_TRUE(h) << v;
  ASSERT_EQ(h->results.size(), 3u);
  EXPECT_EQ(h->results[0], dkim);
  EXPECT_EQ(h->results[1].comment, "(p=reject dis=reject)");
  EXPECT_EQ(h->results[2].reason, "client (evil) \"quoted\"");
  EXPECT_EQ(*h->results[2].property("smtp", "mailfrom"), "user name@example.com");
  EXPECT_EQ(Builder("a.example").value(), "a.example; none");
}

TEST(AuthresTest, BuilderNeutralisesHostileComments) {
  Builder b("mx.example.org");
  b.add(Result{"dkim", "", "fail", "", "bad) ; dkim=pass (", {}});
  auto h = parse(b.value(false));
  ASSERT_TRUE(h) << b.value(false);
  ASSERT_EQ(h->results.size(), 1u);
  EXPECT_EQ(h->results[0].result, "fail");
}

}  // namespace
}  // namespace mxguard::common::authres
