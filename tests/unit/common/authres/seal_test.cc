// Seals on Authentication-Results headers (common/authres/seal.h): made for one queue id, they
// verify for that id only, survive the folding and spacing changes a header goes through on
// its way from one milter to the next, and break on any change of content or secret.
#include "common/authres/seal.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "tests/fixtures/process.h"

namespace mxguard::common::authres {
namespace {

constexpr const char* kSecret = "unit-test-hop-secret-0123456789";
const std::string kValue = " mx.example.org;\n\tdkim=pass header.d=example.org header.s=s1";

TEST(SealTest, VerifiesForItsQueueIdOnly) {
  std::string v = add_seal(kValue, kSecret, "4Xk2Qz1abc");
  EXPECT_NE(v.find(" (mxguard-seal="), std::string::npos) << v;
  EXPECT_EQ(check_seal(v, kSecret, "4Xk2Qz1abc"), SealCheck::kMessage);
  EXPECT_EQ(check_seal(v, kSecret, "4Xother999"), SealCheck::kNone);
  EXPECT_EQ(check_seal(v, "another-secret-0123456789", "4Xk2Qz1abc"), SealCheck::kNone);
  EXPECT_EQ(check_seal(v, "", "4Xk2Qz1abc"), SealCheck::kNone);
  EXPECT_EQ(check_seal(kValue, kSecret, "4Xk2Qz1abc"), SealCheck::kNone) << "no seal";
}

TEST(SealTest, HopSealsHaveNoQueueId) {
  std::string v = add_seal(" mx.example.org; spf=pass smtp.mailfrom=a.example", kSecret, "");
  EXPECT_EQ(check_seal(v, kSecret, "4Xk2Qz1abc"), SealCheck::kHop);
  EXPECT_EQ(check_seal(v, kSecret, ""), SealCheck::kHop);
}

TEST(SealTest, SurvivesRefoldingButNotAChange) {
  std::string v = add_seal(kValue, kSecret, "Q1");
  std::string refolded = "mx.example.org; dkim=pass\r\n header.d=example.org header.s=s1 " +
                         v.substr(v.find("(mxguard-seal="));
  EXPECT_EQ(check_seal(refolded, kSecret, "Q1"), SealCheck::kMessage) << refolded;
  std::string changed = v;
  changed.replace(changed.find("example.org header.s"), 7, "exbmple");
  EXPECT_EQ(check_seal(changed, kSecret, "Q1"), SealCheck::kNone);
  std::string truncated = v.substr(0, v.size() - 2) + ")";
  EXPECT_EQ(check_seal(truncated, kSecret, "Q1"), SealCheck::kNone);
}

TEST(SealTest, StripRemovesOnlyTheSeal) {
  std::string v = add_seal(kValue, kSecret, "Q1");
  EXPECT_EQ(strip_seal(v), kValue);
  EXPECT_EQ(strip_seal(kValue), kValue);
  EXPECT_EQ(strip_seal(" a; dkim=pass (comment)"), " a; dkim=pass (comment)");
}

TEST(SealTest, SecretFiles) {
  testing::TempDir dir;
  testing::write_file(dir / "ok", "  0123456789abcdef0123\n");
  EXPECT_EQ(load_hop_secret((dir / "ok").string()), "0123456789abcdef0123");
  testing::write_file(dir / "short", "short\n");
  EXPECT_THROW(load_hop_secret((dir / "short").string()), std::runtime_error);
  EXPECT_EQ(load_hop_secret((dir / "absent").string()), std::nullopt);
  // A missing file the admin named is an error; the missing built-in default is not.
  EXPECT_THROW(configured_hop_secret((dir / "absent").string()), std::runtime_error);
  EXPECT_EQ(configured_hop_secret(""), std::nullopt);
}

}  // namespace
}  // namespace mxguard::common::authres
