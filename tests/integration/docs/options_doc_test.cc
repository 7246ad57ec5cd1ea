// Each daemon's page in docs/ must name every option that --dump-config prints, so the
// documentation cannot drift from the Options struct.
#include <gtest/gtest.h>

#include <sstream>

#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

void expect_documented(const std::string& binary, const std::string& doc) {
  std::string out;
  ASSERT_EQ(run_command({std::string(MXGUARD_BINARY_DIR) + binary, "--dump-config",
                         "--greylist-whitelist-clients=/dev/null",
                         "--greylist-whitelist-recipients=/dev/null"},
                        &out),
            0)
      << out;
  std::string text = read_file(std::string(MXGUARD_SOURCE_DIR) + doc);
  ASSERT_FALSE(text.empty()) << doc;
  std::istringstream lines(out);
  std::string line;
  int options = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find(" = "));
    ++options;
    EXPECT_NE(text.find("`" + name + "`"), std::string::npos) << name << " is not in " << doc;
  }
  EXPECT_GT(options, 10);
}

TEST(OptionsDocTest, PolicydPageNamesEveryOption) {
  expect_documented("/policyd/mxguard-policyd", "/docs/mxguard-policyd.md");
}

}  // namespace
}  // namespace mxguard::testing
