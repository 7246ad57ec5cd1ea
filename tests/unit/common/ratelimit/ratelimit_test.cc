// Unit tests for common/ratelimit/ratelimit.cc without Redis: limit syntax and key parts.
#include "common/ratelimit/ratelimit.h"

#include <gtest/gtest.h>

namespace mxguard::common::ratelimit {
namespace {

using namespace std::chrono_literals;

TEST(RateLimitLimit, Parses) {
  EXPECT_EQ(Limit::parse("10/1m"), (Limit{10, 60s}));
  EXPECT_EQ(Limit::parse("100/1h"), (Limit{100, 3600s}));
  EXPECT_EQ(Limit::parse("5/30"), (Limit{5, 30s}));  // bare number: seconds
  EXPECT_EQ(Limit::parse("10/1m").to_string(), "10/1m");
  EXPECT_EQ(Limit::parse("3/90s").to_string(), "3/90s");
}

TEST(RateLimitLimit, RejectsBadText) {
  for (const char* bad : {"", "10", "/1m", "0/1m", "x/1m", "10/", "10/1x", "10/500ms", "-1/1m"}) {
    EXPECT_THROW(Limit::parse(bad), std::invalid_argument) << bad;
  }
}

TEST(RateLimitKeyPart, KeepsPlainIdentifiers) {
  EXPECT_EQ(key_part("alice@example.org"), "alice@example.org");
  EXPECT_EQ(key_part("198.51.100.0/24"), "198.51.100.0/24");
  EXPECT_EQ(key_part("2001:db8::/64"), "2001:db8::/64");
}

TEST(RateLimitKeyPart, HashesEverythingElse) {
  EXPECT_EQ(key_part("a{b}").substr(0, 2), "h:");
  EXPECT_EQ(key_part("a b").size(), 42u);
  EXPECT_EQ(key_part(std::string(200, 'a')).substr(0, 2), "h:");
  EXPECT_EQ(key_part(std::string("a\0b", 3)).substr(0, 2), "h:");
  EXPECT_EQ(key_part("").substr(0, 2), "h:");
  EXPECT_NE(key_part("a b"), key_part("a c"));
}

}  // namespace
}  // namespace mxguard::common::ratelimit
