// mxguard-authpolicy's API header (issue 15, finding 7): the package makes a random key file
// at install, the daemon requires what it holds, and Dovecot reads the same file.
#include "policyd/authpolicy/options.h"

#include <gtest/gtest.h>

#include "common/config/config.h"
#include "tests/fixtures/process.h"

namespace mxguard::policyd::authpolicy {
namespace {

TEST(AuthpolicyOptionsTest, ApiHeaderComesFromTheKeyFileWhenNotGiven) {
  testing::TempDir dir;
  testing::write_file(dir / "key", "X-API-Key: 0123456789abcdef\n");
  Options o;
  o.api_header_file = (dir / "key").string();
  EXPECT_EQ(o.effective_api_header(), "X-API-Key: 0123456789abcdef");
  EXPECT_NO_THROW(o.validate());
  o.api_header = "X-Other: given";  // the option wins over the file
  EXPECT_EQ(o.effective_api_header(), "X-Other: given");
}

TEST(AuthpolicyOptionsTest, MissingNamedKeyFileIsAnErrorAndABadOneToo) {
  testing::TempDir dir;
  Options o;
  o.api_header_file = (dir / "absent").string();
  EXPECT_THROW(o.validate(), common::config::OptionError);
  testing::write_file(dir / "bad", "no colon here");
  o.api_header_file = (dir / "bad").string();
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o.api_header_file = "";  // explicitly none
  EXPECT_EQ(o.effective_api_header(), "");
  EXPECT_NO_THROW(o.validate());
}

}  // namespace
}  // namespace mxguard::policyd::authpolicy
