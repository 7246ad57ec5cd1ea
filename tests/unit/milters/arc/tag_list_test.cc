// The tag-list and ARC header parsers (milters/arc/tag_list.cc, arc_headers.cc): valid forms,
// every error value, and the limits.
#include "milters/arc/tag_list.h"

#include <gtest/gtest.h>

#include "milters/arc/arc_headers.h"

namespace mxguard::milter::arc {
namespace {

TEST(ArcTagListTest, ParsesAndTrims) {
  auto p = parse_tag_list(" i=1 ;\r\n\t a = rsa-sha256; b=ab\r\n cd;;");
  ASSERT_TRUE(p.list);
  EXPECT_EQ(*p.list->get("i"), "1");
  EXPECT_EQ(*p.list->get("a"), "rsa-sha256");
  EXPECT_EQ(*p.list->get("b"), "ab\r\n cd");
  EXPECT_EQ(p.list->get("x"), nullptr);
}

TEST(ArcTagListTest, ErrorsAreValues) {
  EXPECT_EQ(parse_tag_list("i=1; i=2").error, TagError::kDuplicate);
  EXPECT_EQ(parse_tag_list("i").error, TagError::kMissingEquals);
  EXPECT_EQ(parse_tag_list("1a=2").error, TagError::kBadName);
  EXPECT_EQ(parse_tag_list("a=\x01").error, TagError::kBadValue);
  EXPECT_EQ(parse_tag_list(std::string(kMaxTagListBytes + 1, 'a')).error, TagError::kTooLong);
  std::string many;
  for (std::size_t i = 0; i <= kMaxTags; ++i) many += "t" + std::to_string(i) + "=1;";
  EXPECT_EQ(parse_tag_list(many).error, TagError::kTooManyTags);
}

TEST(ArcHeadersTest, Seal) {
  auto s = parse_seal(" i=2; a=rsa-sha256; cv=Pass; d=Lists.Example.org; s=sel; t=1; b=AAAA");
  ASSERT_TRUE(s.value) << s.error;
  EXPECT_EQ(s.value->instance, 2);
  EXPECT_EQ(s.value->cv, Cv::kPass);
  EXPECT_EQ(s.value->domain, "lists.example.org");
  EXPECT_FALSE(parse_seal(" i=2; a=rsa-sha256; cv=maybe; d=x; s=y; b=AAAA").value);
  EXPECT_FALSE(parse_seal(" i=2; a=rsa-sha1; cv=pass; d=x; s=y; b=AAAA").value);
  EXPECT_FALSE(parse_seal(" i=2; a=rsa-sha256; cv=pass; d=x; s=y; h=from; b=AAAA").value);
  auto bad = parse_seal(" i=0; a=rsa-sha256; cv=pass; d=x; s=y; b=AAAA");
  EXPECT_FALSE(bad.value);
  EXPECT_EQ(bad.instance, 0);
  EXPECT_FALSE(parse_seal(" i=51; a=rsa-sha256; cv=pass; d=x; s=y; b=AAAA").value);
}

TEST(ArcHeadersTest, MessageSignature) {
  std::string bh = base64_encode(std::string(32, 'x'));
  auto m = parse_message_signature(
      " i=1; a=ed25519-sha256; c=relaxed/simple; d=x.example; "
      "s=y; h=From : To:subject; bh=" +
      bh + "; b=AAAA");
  ASSERT_TRUE(m.value) << m.error;
  EXPECT_EQ(m.value->headers, (std::vector<std::string>{"from", "to", "subject"}));
  EXPECT_EQ(m.value->header_canon, Canon::kRelaxed);
  EXPECT_EQ(m.value->body_canon, Canon::kSimple);
  EXPECT_FALSE(parse_message_signature(" i=1; a=rsa-sha256; d=x; s=y; h=from:arc-seal; bh=" + bh +
                                       "; b=AAAA")
                   .value);
  EXPECT_FALSE(
      parse_message_signature(" i=1; a=rsa-sha256; d=x; s=y; h=from; l=5; bh=" + bh + "; b=AAAA")
          .value);
  EXPECT_FALSE(
      parse_message_signature(" i=1; a=rsa-sha256; d=x; s=y; h=from; bh=AAAA; b=AAAA").value);
}

TEST(ArcHeadersTest, AuthResults) {
  auto a = parse_auth_results(" i=3; mx.example; spf=pass smtp.mailfrom=x.example");
  ASSERT_TRUE(a.value);
  EXPECT_EQ(a.value->instance, 3);
  EXPECT_EQ(a.value->payload, "mx.example; spf=pass smtp.mailfrom=x.example");
  EXPECT_FALSE(parse_auth_results(" mx.example; spf=pass").value);
  EXPECT_FALSE(parse_auth_results(" i=1").value);
}

TEST(ArcHeadersTest, Base64) {
  EXPECT_EQ(*base64_decode("aGVs\r\n bG8="), "hello");
  EXPECT_FALSE(base64_decode("aGVsbG8"));
  EXPECT_FALSE(base64_decode("aG=sbG8="));
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
}

}  // namespace
}  // namespace mxguard::milter::arc
