// Tests common/util/strings.cc: lower, trim, trim_blanks, iequals and split as their callers
// rely on them (ASCII only, views into the argument, no locale).
#include "common/util/strings.h"

#include <gtest/gtest.h>

namespace mxguard::common::util {
namespace {

TEST(Strings, Lower) {
  EXPECT_EQ(lower("MX.Example.ORG"), "mx.example.org");
  EXPECT_EQ(lower("\xC3\x89t\xC3\xA9"), "\xC3\x89t\xC3\xA9");  // bytes >= 0x80 stay as they are
  EXPECT_EQ(lower(""), "");
}

TEST(Strings, TrimStripsEveryAsciiSpace) {
  EXPECT_EQ(trim(" \t\r\n\v\fvalue x \f\v\n\r\t "), "value x");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(trim(""), "");
  std::string_view s = "  a ";
  EXPECT_EQ(trim(s).data(), s.data() + 2);  // a view into the argument
}

TEST(Strings, TrimBlanksStripsOnlySpaceAndTab) {
  EXPECT_EQ(trim_blanks(" \t secret \t"), "secret");
  EXPECT_EQ(trim_blanks("secret\r\n"), "secret\r\n");
  EXPECT_EQ(trim_blanks("\vsecret\f"), "\vsecret\f");
  EXPECT_EQ(trim_blanks(" \t "), "");
}

TEST(Strings, IequalsAndSplit) {
  EXPECT_TRUE(iequals("DKIM-Signature", "dkim-signature"));
  EXPECT_FALSE(iequals("dkim", "dkim-"));
  EXPECT_FALSE(iequals("\xC3\x89", "\xC3\xA9"));  // ASCII only
  auto parts = split("a;;b", ';');
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], "a");
  EXPECT_EQ(parts[1], "");
  EXPECT_EQ(parts[2], "b");
  EXPECT_EQ(split("", ';').size(), 1u);
}

}  // namespace
}  // namespace mxguard::common::util
