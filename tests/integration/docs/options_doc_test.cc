// Each daemon's page in docs/ must name every option that --dump-config prints, so the
// documentation cannot drift from the Options struct.
#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

void expect_documented(const std::string& binary, const std::string& doc,
                       std::vector<std::string> extra = {}) {
  std::string out;
  std::vector<std::string> argv{std::string(MXGUARD_BINARY_DIR) + binary, "--dump-config"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ASSERT_EQ(run_command(argv, &out), 0) << out;
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
  expect_documented(
      "/policyd/mxguard-policyd", "/docs/mxguard-policyd.md",
      {"--greylist-whitelist-clients=/dev/null", "--greylist-whitelist-recipients=/dev/null"});
}

TEST(OptionsDocTest, AvPageNamesEveryOption) {
  expect_documented("/milters/av/mxguard-av", "/docs/mxguard-av.md");
}

TEST(OptionsDocTest, MilterHostPageNamesEveryOption) {
  expect_documented("/milters/host/mxguard-milter", "/docs/mxguard-milter.md");
}

TEST(OptionsDocTest, DkimPageNamesEveryOption) {
  expect_documented("/milters/dkim/mxguard-dkim", "/docs/mxguard-dkim.md");
}

TEST(OptionsDocTest, DmarcPageNamesEveryOption) {
  expect_documented("/milters/dmarc/mxguard-dmarc", "/docs/mxguard-dmarc.md");
  expect_documented("/milters/dmarc/mxguard-dmarc-report", "/docs/mxguard-dmarc.md");
}

TEST(OptionsDocTest, AuthpolicyPageNamesEveryOption) {
  expect_documented("/policyd/authpolicy/mxguard-authpolicy", "/docs/mxguard-authpolicy.md");
}

TEST(OptionsDocTest, AuthpolicyBanCommandOptionsAreDocumented) {
  std::string out;
  ASSERT_EQ(run_command({std::string(MXGUARD_BINARY_DIR) + "/policyd/authpolicy/mxguard-authpolicy",
                         "ban", "-c", "/dev/null", "--dump-config"},
                        &out),
            0)
      << out;
  std::string text = read_file(std::string(MXGUARD_SOURCE_DIR) + "/docs/mxguard-authpolicy.md");
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find(" = "));
    EXPECT_NE(text.find("`" + name + "`"), std::string::npos) << name;
  }
}

TEST(OptionsDocTest, KeygenPageNamesEveryOption) {
  std::string out;
  ASSERT_EQ(run_command(
                {std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-keygen", "--dump-config"},
                &out),
            0)
      << out;
  std::string text = read_file(std::string(MXGUARD_SOURCE_DIR) + "/docs/mxguard-keygen.md");
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find(" = "));
    EXPECT_NE(text.find("`" + name + "`"), std::string::npos) << name;
  }
}

TEST(OptionsDocTest, DnscheckPageNamesEveryOption) {
  std::string out;
  ASSERT_EQ(run_command({std::string(MXGUARD_BINARY_DIR) + "/milters/dnscheck/mxguard-dnscheck",
                         "--dump-config"},
                        &out),
            0)
      << out;
  std::string text = read_file(std::string(MXGUARD_SOURCE_DIR) + "/docs/mxguard-dnscheck.md");
  std::istringstream lines(out);
  std::string line;
  int options = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find(" = "));
    ++options;
    EXPECT_NE(text.find("`" + name + "`"), std::string::npos) << name;
  }
  EXPECT_GT(options, 5);
}

}  // namespace
}  // namespace mxguard::testing
