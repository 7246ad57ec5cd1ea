// Unit tests for common/redis/script.cc: the local SHA1 must equal what Redis computes.
#include "common/redis/script.h"

#include <gtest/gtest.h>

namespace mxguard::common::redis {
namespace {

TEST(ScriptTest, Sha1MatchesRedis) {
  // The SHA1 Redis reports for EVAL "return 1" (also `printf 'return 1' | sha1sum`).
  Script script("one", "return 1");
  EXPECT_EQ(script.name(), "one");
  EXPECT_EQ(script.source(), "return 1");
  EXPECT_EQ(script.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(ScriptTest, Sha1OfKnownVectors) {
  EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_hex(std::string("a\0b", 3)).size(), 40u);
  EXPECT_NE(sha1_hex(std::string("a\0b", 3)), sha1_hex("a"));
}

}  // namespace
}  // namespace mxguard::common::redis
