// DKIM key rotation's pure parts: the next selector, the KeyTable rewrite (one line, the rest
// untouched), the state file's round trip and errors, the decision per state, and the atomic
// file replacement (mode kept, a failed check keeps the old file). The whole rotation against
// DNS is tests/integration/milters/dkim/rotate_test.cc.
#include "milters/dkim/rotate.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

using namespace std::chrono_literals;

TEST(DkimRotateTest, NextSelectorCountsUp) {
  EXPECT_EQ(next_selector("s2026"), "s2027");
  EXPECT_EQ(next_selector("k09"), "k10");
  EXPECT_EQ(next_selector("s99"), "s100");
  EXPECT_EQ(next_selector("2024"), "2025");
  EXPECT_EQ(next_selector("mail"), "mail2");
  EXPECT_EQ(next_selector("ed-1"), "ed-2");
}

TEST(DkimRotateTest, KeyTableRewriteChangesOneLineOnly) {
  std::string table =
      "# keys\n"
      "rsa   example.test:s1:/k/s1.private   # the RSA key\n"
      "\n"
      "ed\texample.test:e1:/k/e1.private\n"
      "rsa2  example.test:s1:/k/s1.private\n";
  std::string out = rewrite_key_table(table, "rsa", "example.test:s2:/k/s2.private");
  EXPECT_EQ(out,
            "# keys\n"
            "rsa   example.test:s2:/k/s2.private   # the RSA key\n"
            "\n"
            "ed\texample.test:e1:/k/e1.private\n"
            "rsa2  example.test:s1:/k/s1.private\n");
  // No trailing newline stays without one; a name inside a comment is not a key.
  EXPECT_EQ(rewrite_key_table("# rsa x\ned a:b:/c", "ed", "a:d:/e"), "# rsa x\ned a:d:/e");
  EXPECT_THROW(rewrite_key_table(table, "absent", "x:y:/z"), KeyError);
  EXPECT_THROW(rewrite_key_table("# rsa example.test:s1:/k\n", "rsa", "x:y:/z"), KeyError);
}

TEST(DkimRotateTest, KeyTableEntriesAndErrors) {
  testing::TempDir dir;
  testing::write_file(dir / "KeyTable",
                      "# c\nrsa example.test:s1:/k/s1.private\n\ned %:e1:/k/e1\n");
  auto entries = read_key_table((dir / "KeyTable").string());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "rsa");
  EXPECT_EQ(entries[0].domain, "example.test");
  EXPECT_EQ(entries[0].selector, "s1");
  EXPECT_EQ(entries[0].path, "/k/s1.private");
  EXPECT_EQ(entries[1].domain, "%");
  EXPECT_EQ(entries[1].line, 4);
  testing::write_file(dir / "Bad", "rsa example.test:s1\n");
  try {
    read_key_table((dir / "Bad").string());
    FAIL() << "no error";
  } catch (const KeyError& ex) {
    EXPECT_NE(std::string(ex.what()).find("Bad:1:"), std::string::npos) << ex.what();
  }
}

TEST(DkimRotateTest, StateFileRoundTripAndErrors) {
  testing::TempDir dir;
  std::string path = (dir / "KeyTable.rotation").string();
  EXPECT_TRUE(read_rotations(path).empty());  // no file: nothing in progress
  std::vector<Rotation> rs{
      {"rsa", Rotation::State::kPending, "example.test", "s1", "/k/s1.private", "s2",
       "/k/s2.private", 1797926400},
      {"ed", Rotation::State::kRetired, "example.test", "e1", "/k/e1", "e2", "/k/e2", 1798012800},
  };
  replace_file(path, format_rotations(rs));
  EXPECT_EQ(read_rotations(path), rs);
  std::string text = testing::read_file(path);
  EXPECT_NE(text.find("key=rsa state=pending domain=example.test old=s1 old-key=/k/s1.private "
                      "new=s2 new-key=/k/s2.private since=2026-12-22T08:00:00Z"),
            std::string::npos)
      << text;
  for (const char* bad : {"key=a state=done domain=d old=s old-key=/p new=t new-key=/q "
                          "since=2026-12-22T08:00:00Z",
                          "key=a state=pending domain=d old=s old-key=/p new=t new-key=/q",
                          "key=a state=pending domain=d old=s old-key=/p new=t new-key=/q "
                          "since=yesterday",
                          "key=a key=b"}) {
    testing::write_file(path, std::string("# header\n") + bad + "\n");
    try {
      read_rotations(path);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const KeyError& ex) {
      EXPECT_NE(std::string(ex.what()).find(":2:"), std::string::npos) << ex.what();
    }
  }
}

TEST(DkimRotateTest, UtcTimes) {
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(parse_utc("2026-12-22T08:00:00Z"), 1797926400);
  EXPECT_FALSE(parse_utc("2026-12-22 08:00:00"));
  EXPECT_FALSE(parse_utc("2026-12-22T08:00:00Zjunk"));
}

TEST(DkimRotateTest, DecisionPerState) {
  Rotation r{"rsa", Rotation::State::kPending, "example.test", "s1", "/a", "s2", "/b", 1000};
  KeyCheck match;
  match.status = KeyStatus::kMatch;
  KeyCheck missing;
  missing.status = KeyStatus::kMissing;
  KeyCheck wrong;
  wrong.status = KeyStatus::kWrongKey;
  KeyCheck dns_error;
  dns_error.status = KeyStatus::kDnsError;
  EXPECT_EQ(decide_rotation(r, 2000, 7s, match), RotationAction::kSwitch);
  EXPECT_EQ(decide_rotation(r, 2000, 7s, missing), RotationAction::kWaitForRecord);
  EXPECT_EQ(decide_rotation(r, 2000, 7s, wrong), RotationAction::kWaitForRecord);
  EXPECT_EQ(decide_rotation(r, 2000, 7s, dns_error), RotationAction::kWaitForRecord);
  r.state = Rotation::State::kSwitched;
  EXPECT_EQ(decide_rotation(r, 1006, 7s, match), RotationAction::kKeepOld);
  EXPECT_EQ(decide_rotation(r, 1007, 7s, match), RotationAction::kRetire);
  r.state = Rotation::State::kRetired;
  EXPECT_EQ(decide_rotation(r, 5000, 7s, match), RotationAction::kListForRemoval);
  EXPECT_EQ(decide_rotation(r, 5000, 7s, dns_error), RotationAction::kListForRemoval);
  EXPECT_EQ(decide_rotation(r, 5000, 7s, missing), RotationAction::kFinish);
}

TEST(DkimRotateTest, ReplaceFileKeepsModeAndTheOldFileOnAFailedCheck) {
  testing::TempDir dir;
  std::string path = (dir / "KeyTable").string();
  testing::write_file(path, "old\n");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  std::string seen;
  replace_file(path, "new\n", [&](const std::string& temp) { seen = testing::read_file(temp); });
  EXPECT_EQ(seen, "new\n");  // the check saw the new content before the rename
  EXPECT_EQ(testing::read_file(path), "new\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_THROW(
      replace_file(path, "broken\n", [](const std::string&) { throw KeyError("does not load"); }),
      KeyError);
  EXPECT_EQ(testing::read_file(path), "new\n");
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);  // no temporary file left behind
  replace_file((dir / "fresh").string(), "x");
  ASSERT_EQ(::stat((dir / "fresh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

}  // namespace
}  // namespace mxguard::milter::dkim
