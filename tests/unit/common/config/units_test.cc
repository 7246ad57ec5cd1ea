#include "common/config/units.h"

#include <gtest/gtest.h>

namespace mxguard::common::config {
namespace {

using namespace std::chrono_literals;

TEST(UnitsTest, ParsesDurations) {
  EXPECT_EQ(parse_duration("300s").value, 300s);
  EXPECT_EQ(parse_duration("300").value, 300s);
  EXPECT_EQ(parse_duration("5m").value, 5min);
  EXPECT_EQ(parse_duration("35d").value, 35 * 24h);
  EXPECT_EQ(parse_duration("250ms").value, 250ms);
  EXPECT_EQ(parse_duration("1w").value, 7 * 24h);
}

TEST(UnitsTest, RejectsBadDurations) {
  for (const char* bad : {"", "s", "5x", "-5s", "5 s", "1.5s", "99999999999999999999d"}) {
    EXPECT_THROW(parse_duration(bad), std::invalid_argument) << bad;
  }
}

TEST(UnitsTest, FormatsDurationsInLargestExactUnit) {
  EXPECT_EQ(format_duration(Duration(300s)), "5m");
  EXPECT_EQ(format_duration(Duration(35 * 24h)), "5w");
  EXPECT_EQ(format_duration(Duration(2 * 24h)), "2d");
  EXPECT_EQ(format_duration(Duration(1500ms)), "1500ms");
  EXPECT_EQ(format_duration(Duration(0s)), "0s");
}

TEST(UnitsTest, ParsesAndFormatsSizes) {
  EXPECT_EQ(parse_size("25M").bytes, 25u * 1024 * 1024);
  EXPECT_EQ(parse_size("64k").bytes, 64u * 1024);
  EXPECT_EQ(parse_size("64KB").bytes, 64u * 1024);
  EXPECT_EQ(parse_size("1G").bytes, 1024u * 1024 * 1024);
  EXPECT_EQ(parse_size("1000").bytes, 1000u);
  EXPECT_THROW(parse_size("25T"), std::invalid_argument);
  EXPECT_THROW(parse_size("M"), std::invalid_argument);
  EXPECT_EQ(format_size(Size{25u * 1024 * 1024}), "25M");
  EXPECT_EQ(format_size(Size{1000}), "1000");
}

}  // namespace
}  // namespace mxguard::common::config
