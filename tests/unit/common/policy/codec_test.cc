#include "common/policy/codec.h"

#include <gtest/gtest.h>

#include "tests/fixtures/process.h"

namespace mxguard::common::policy {
namespace {

Parser::Status feed_all(Parser& p, std::string_view data, std::size_t* used_out = nullptr) {
  std::size_t used = 0;
  auto s = p.feed(data, used);
  if (used_out) *used_out = used;
  return s;
}

TEST(PolicyCodecTest, ParsesTheReadmeExampleRequest) {
  std::string data = testing::read_file(std::string(MXGUARD_SOURCE_DIR) +
                                        "/tests/fixtures/policy/request-all-attributes.txt");
  ASSERT_FALSE(data.empty());
  Parser p;
  std::size_t used = 0;
  ASSERT_EQ(feed_all(p, data, &used), Parser::Status::kComplete) << p.error();
  EXPECT_EQ(used, data.size());
  Request r = p.take();
  EXPECT_EQ(r.size(), 29u);
  EXPECT_EQ(r.protocol_state(), "RCPT");
  EXPECT_EQ(r.client_address(), "1.2.3.4");
  EXPECT_EQ(r.sender(), "foo@bar.tld");
  EXPECT_EQ(r.recipient(), "bar@foo.tld");
  EXPECT_EQ(r.queue_id(), "8045F2AB23");
  EXPECT_TRUE(r.has("sasl_sender"));
  EXPECT_EQ(r.get("sasl_sender"), "");
  EXPECT_FALSE(r.has("no_such_attribute"));
}

TEST(PolicyCodecTest, HandlesByteAtATimeAndPipelinedRequests) {
  std::string two = "request=smtpd_access_policy\nsender=a@b\n\nrequest=x\nsender=c@d\n\n";
  Parser p;
  std::vector<Request> got;
  for (char c : two) {
    std::size_t used = 0;
    auto s = p.feed(std::string_view(&c, 1), used);
    EXPECT_EQ(used, 1u);
    ASSERT_NE(s, Parser::Status::kError) << p.error();
    if (s == Parser::Status::kComplete) got.push_back(p.take());
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].sender(), "a@b");
  EXPECT_EQ(got[1].sender(), "c@d");
  EXPECT_TRUE(p.idle());

  Parser q;
  std::size_t used = 0;
  ASSERT_EQ(q.feed(two, used), Parser::Status::kComplete);
  EXPECT_EQ(two.substr(used), "request=x\nsender=c@d\n\n");
}

TEST(PolicyCodecTest, ValuesMayContainEqualsAndCrLfIsTolerated) {
  Parser p;
  ASSERT_EQ(feed_all(p, "ccert_subject=CN=x,O=y\r\n\r\n"), Parser::Status::kComplete);
  EXPECT_EQ(p.take().get("ccert_subject"), "CN=x,O=y");
}

TEST(PolicyCodecTest, RejectsGarbage) {
  struct Case {
    std::string input;
    const char* why;
  };
  std::vector<Case> cases = {
      {"no equals sign\n", "not a name=value line"}, {"=value\n", "not a name=value line"},
      {"na me=v\n", "invalid attribute name"},       {"\n", "empty request"},
      {std::string("a=b\0c\n", 6), "NUL byte"},      {"a=1\na=2\n\n", "duplicate attribute"},
      {std::string(5000, 'x'), "line longer"},
  };
  for (const auto& c : cases) {
    Parser p;
    EXPECT_EQ(feed_all(p, c.input), Parser::Status::kError) << c.why;
    EXPECT_NE(p.error().find(c.why), std::string::npos) << p.error();
  }
}

TEST(PolicyCodecTest, EnforcesRequestAndAttributeLimits) {
  Limits limits;
  limits.max_request = 100;
  Parser big(limits);
  std::string data;
  for (int i = 0; i < 20; ++i) data += "a" + std::to_string(i) + "=xxxxxxx\n";
  EXPECT_EQ(feed_all(big, data), Parser::Status::kError);
  EXPECT_NE(big.error().find("larger than 100"), std::string::npos);
  Parser many(Limits{4096, 4096, 3});
  EXPECT_EQ(feed_all(many, "a=1\nb=2\nc=3\nd=4\n\n"), Parser::Status::kError);
  EXPECT_NE(many.error().find("more than 3 attributes"), std::string::npos);
}

TEST(PolicyCodecTest, ReplyIsAlwaysOneLine) {
  EXPECT_EQ(format_reply("DUNNO"), "action=DUNNO\n\n");
  EXPECT_EQ(format_reply("450 bad\nnews"), "action=450 bad news\n\n");
}

}  // namespace
}  // namespace mxguard::common::policy
