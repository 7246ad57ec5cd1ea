// postgrey-format whitelists: every entry kind, and Debian's own postgrey files.
#include "policyd/whitelist.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/fixtures/process.h"

namespace mxguard::policyd {
namespace {

common::net::IpAddress ip(const char* s) { return *common::net::IpAddress::parse(s); }

TEST(ClientWhitelistTest, EntryKinds) {
  ClientWhitelist w;
  w.add_entry("example.org", "t:1");
  w.add_entry("/^mail\\d+\\.telekom\\.de$/", "t:2");
  w.add_entry("203.0.113.5", "t:3");
  w.add_entry("198.51.100", "t:4");
  w.add_entry("10.20", "t:5");
  w.add_entry("2001:db8::/32", "t:6");
  w.add_entry("192.0.2.0/25", "t:7");
  auto none = ip("8.8.8.8");
  EXPECT_TRUE(w.matches("example.org", none));
  EXPECT_TRUE(w.matches("MX1.Example.ORG", none));
  EXPECT_FALSE(w.matches("badexample.org", none));
  EXPECT_TRUE(w.matches("mail42.telekom.de", none));
  EXPECT_FALSE(w.matches("mailx.telekom.de", none));
  EXPECT_TRUE(w.matches("unknown", ip("203.0.113.5")));
  EXPECT_FALSE(w.matches("unknown", ip("203.0.113.6")));
  EXPECT_TRUE(w.matches("unknown", ip("198.51.100.200")));
  EXPECT_TRUE(w.matches("unknown", ip("10.20.30.40")));
  EXPECT_TRUE(w.matches("unknown", ip("2001:db8:5::1")));
  EXPECT_TRUE(w.matches("unknown", ip("192.0.2.100")));
  EXPECT_FALSE(w.matches("unknown", ip("192.0.2.200")));
  EXPECT_FALSE(w.matches("", none));
}

TEST(ClientWhitelistTest, BadLinesNameFileAndLine) {
  testing::TempDir dir;
  testing::write_file(dir / "w", "ok.example\n# comment\n/unclosed(/\n");
  ClientWhitelist w;
  try {
    w.load((dir / "w").string());
    FAIL();
  } catch (const std::runtime_error& ex) {
    EXPECT_NE(std::string(ex.what()).find((dir / "w").string() + ":3:"), std::string::npos)
        << ex.what();
  }
  // Found by fuzz_whitelist: a partial IPv4 entry with an empty part ("192.2.") escaped as
  // std::invalid_argument without file and line.
  testing::write_file(dir / "partial", "192.0.2\n192.2.\n");
  ClientWhitelist partial;
  try {
    partial.load((dir / "partial").string());
    FAIL();
  } catch (const std::runtime_error& ex) {
    EXPECT_NE(std::string(ex.what()).find((dir / "partial").string() + ":2:"), std::string::npos)
        << ex.what();
  }
  ClientWhitelist missing_local;
  EXPECT_NO_THROW(missing_local.load((dir / "nothere.local").string()));
  EXPECT_THROW(missing_local.load((dir / "nothere").string()), std::runtime_error);
}

// A missing built-in default (/etc/mxguard/whitelist_*) is skipped and reported, so the daemon
// runs from a build tree; a missing file the admin named is an error naming the file.
TEST(WhitelistFileTest, MissingDefaultIsSkippedMissingNamedFileIsAnError) {
  testing::TempDir dir;
  const std::string clients = (dir / "whitelist_clients").string();
  const std::string recipients = (dir / "whitelist_recipients").string();
  ClientWhitelist c;
  EXPECT_EQ(c.load(WhitelistFile::built_in(clients)), WhitelistLoad::kMissingDefault);
  EXPECT_EQ(c.load(WhitelistFile::built_in(clients + ".local")), WhitelistLoad::kMissingLocal);
  EXPECT_EQ(c.size(), 0u);
  try {
    c.load(WhitelistFile(clients));
    FAIL() << "a missing file the admin named must be an error";
  } catch (const std::runtime_error& ex) {
    EXPECT_EQ(std::string(ex.what()), clients + ": cannot read whitelist: no such file");
  }
  RecipientWhitelist r;
  EXPECT_EQ(r.load(WhitelistFile::built_in(recipients)), WhitelistLoad::kMissingDefault);
  EXPECT_THROW(r.load(WhitelistFile(recipients)), std::runtime_error);
  // Once the default exists it is read like any other file, bad lines included.
  testing::write_file(clients, "client.example\n");
  EXPECT_EQ(c.load(WhitelistFile::built_in(clients)), WhitelistLoad::kLoaded);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_TRUE(c.matches("mx.client.example", ip("8.8.8.8")));
  testing::write_file(recipients, "bad entry\n");
  EXPECT_THROW(r.load(WhitelistFile::built_in(recipients)), std::runtime_error);
}

TEST(WhitelistFileTest, AParsedValueIsAdminNamed) {
  WhitelistFile f = WhitelistFile::built_in("/etc/mxguard/whitelist_clients");
  EXPECT_TRUE(f.is_default);
  parse_value("/etc/mxguard/whitelist_clients", f);
  EXPECT_FALSE(f.is_default);
  EXPECT_EQ(f.path, "/etc/mxguard/whitelist_clients");
  EXPECT_EQ(format_value(f), "/etc/mxguard/whitelist_clients");
}

TEST(RecipientWhitelistTest, EntryKinds) {
  RecipientWhitelist w;
  w.add_entry("postmaster@", "t");
  w.add_entry("info@shop.example", "t");
  w.add_entry("lists.example", "t");
  w.add_entry("/^noreply-.*@/", "t");
  EXPECT_TRUE(w.matches("postmaster@anything.example"));
  EXPECT_TRUE(w.matches("PostMaster+tag@anything.example"));
  EXPECT_FALSE(w.matches("postmasterx@anything.example"));
  EXPECT_TRUE(w.matches("info@shop.example"));
  EXPECT_TRUE(w.matches("info+x@shop.example"));
  EXPECT_FALSE(w.matches("info@other.example"));
  EXPECT_TRUE(w.matches("a@lists.example"));
  EXPECT_TRUE(w.matches("a@sub.lists.example"));
  EXPECT_FALSE(w.matches("a@notlists.example"));
  EXPECT_TRUE(w.matches("noreply-7@x.example"));
  EXPECT_FALSE(w.matches("user@x.example"));
}

// Debian's postgrey package ships these; they must load unchanged.
TEST(WhitelistTest, LoadsDebianPostgreyFiles) {
  const std::string clients = "/etc/postgrey/whitelist_clients";
  const std::string recipients = "/etc/postgrey/whitelist_recipients";
  if (!std::filesystem::exists(clients)) GTEST_SKIP() << "postgrey not installed";
  ClientWhitelist c;
  ASSERT_NO_THROW(c.load(clients));
  EXPECT_GT(c.size(), 100u);
  EXPECT_TRUE(c.matches("smtp.debian.org", ip("8.8.8.8")));
  EXPECT_TRUE(c.matches("mail7.telekom.de", ip("8.8.8.8")));
  EXPECT_TRUE(c.matches("unknown", ip("66.216.126.174")));
  EXPECT_FALSE(c.matches("mail.example.com", ip("8.8.8.8")));
  RecipientWhitelist r;
  ASSERT_NO_THROW(r.load(recipients));
  EXPECT_TRUE(r.matches("postmaster@example.com"));
  EXPECT_TRUE(r.matches("abuse@example.com"));
  EXPECT_FALSE(r.matches("user@example.com"));
}

}  // namespace
}  // namespace mxguard::policyd
