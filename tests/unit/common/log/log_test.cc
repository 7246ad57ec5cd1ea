#include "common/log/log.h"

#include <gtest/gtest.h>

namespace mxguard::common::log {
namespace {

TEST(LogTest, DecisionLineStartsWithQueueId) {
  EXPECT_EQ(format_decision("4Xk2Qz1abc", {{"action", "defer"}, {"client", "1.2.3.4"}}),
            "4Xk2Qz1abc: action=defer client=1.2.3.4");
}

TEST(LogTest, DecisionLineUsesNoqueueWithoutQueueId) {
  EXPECT_EQ(format_decision("", {{"action", "dunno"}}), "NOQUEUE: action=dunno");
}

TEST(LogTest, ValuesWithSpacesAndQuotesAreQuoted) {
  EXPECT_EQ(format_decision("Q", {{"reason", "too \"early\""}, {"empty", ""}, {"eq", "a=b"}}),
            "Q: reason=\"too \\\"early\\\"\" empty=\"\" eq=\"a=b\"");
}

TEST(LogTest, ComputedFieldsFormatLikeLiteralOnes) {
  OwnedFields fields{{"reason", "too \"early\""}, {"empty", ""}, {"eq", "a=b"}};
  EXPECT_EQ(format_decision("Q", fields), "Q: reason=\"too \\\"early\\\"\" empty=\"\" eq=\"a=b\"");
  EXPECT_EQ(format_decision("", OwnedFields{{"action", "dunno"}}), "NOQUEUE: action=dunno");
  EXPECT_EQ(format_decision("Q", OwnedFields{}), "Q:");
}

TEST(LogTest, ParsesLevelsAndRejectsUnknown) {
  EXPECT_EQ(parse_level("debug"), Level::kDebug);
  EXPECT_EQ(parse_level("warning"), Level::kWarning);
  EXPECT_THROW(parse_level("verbose"), std::invalid_argument);
  EXPECT_EQ(parse_target("syslog"), Target::kSyslog);
  EXPECT_THROW(parse_target("file"), std::invalid_argument);
}

TEST(LogTest, StderrLineHasSeverityPrefixAndEscapesControlCharacters) {
  init("mxguard-test", Target::kStderr, Level::kInfo);
  testing::internal::CaptureStderr();
  warning("bad\r\nline");
  debug("hidden");
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("mxguard-test["), std::string::npos);
  EXPECT_NE(out.find("]: warning: bad\\x0d\\x0aline\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("hidden"), std::string::npos);
}

}  // namespace
}  // namespace mxguard::common::log
