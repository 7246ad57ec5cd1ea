// Pure logic of greylisting: sender normalisation (postgrey's rules plus SRS), triplets and the
// Redis key layout.
#include "policyd/greylist.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "common/config/config.h"
#include "common/redis/options.h"
#include "tests/fixtures/process.h"

namespace mxguard::policyd {
namespace {

TEST(NormalizeSenderTest, FollowsPostgrey) {
  EXPECT_EQ(normalize_sender("user+ext@example.com"), "user@example.com");
  EXPECT_EQ(normalize_sender("bounce-12345-678@lists.example.org"), "bounce-#-#@lists.example.org");
  EXPECT_EQ(normalize_sender("abc123@example.com"), "abc123@example.com");  // not a whole word
  EXPECT_EQ(normalize_sender("123abc@example.com"), "123abc@example.com");
  EXPECT_EQ(normalize_sender("x_1@example.com"), "x_1@example.com");  // '_' is a word char
  EXPECT_EQ(normalize_sender("prvs=1234abcdef=alice@example.com"), "alice@example.com");
  EXPECT_EQ(normalize_sender("prvs=alice=1234abcdef@example.com"), "alice@example.com");
  EXPECT_EQ(normalize_sender(""), "");
  EXPECT_EQ(normalize_sender("MAILER-DAEMON"), "MAILER-DAEMON");
}

TEST(NormalizeSenderTest, MapsSrsToTheOriginalSender) {
  EXPECT_EQ(normalize_sender("SRS0=HHH=TT=example.com=alice@forwarder.example"),
            "alice@example.com");
  EXPECT_EQ(normalize_sender("SRS0=a1b2=Q7=example.com=bob+list@fwd.example"), "bob@example.com");
  // Not enough fields: treated as an ordinary address.
  EXPECT_EQ(normalize_sender("SRS0=broken@fwd.example"), "SRS0=broken@fwd.example");
}

TEST(TripletTest, BySubnetByDefaultAndByHostOnRequest) {
  GreylistOptions o;
  auto v4 = *common::net::IpAddress::parse("198.51.100.77");
  auto t = make_triplet(v4, "User+x@Example.COM", "Rcpt@Example.NET", o);
  EXPECT_EQ(t.client_net, "198.51.100.0");
  EXPECT_EQ(t.client_ip, "198.51.100.77");
  EXPECT_EQ(t.postgrey_key(), "198.51.100.0/user@example.com/rcpt@example.net");
  o.ipv4_prefix = 32;
  EXPECT_EQ(make_triplet(v4, "a@b", "c@d", o).client_net, "198.51.100.77");
  auto v6 = *common::net::IpAddress::parse("2001:db8:1:2:3::9");
  EXPECT_EQ(make_triplet(v6, "a@b", "c@d", GreylistOptions{}).client_net, "2001:db8:1:2::");
}

// Issue 15, finding 8: a 4 KB sender made a 4 KB Redis key per triplet. Over 256 octets a
// part is keyed by its hash: bounded, and still distinct per address.
TEST(TripletTest, OverlongPartsAreKeyedByTheirHash) {
  GreylistOptions o;
  auto ip = *common::net::IpAddress::parse("198.51.100.77");
  std::string long_a = std::string(4000, 'a') + "@x.example";
  std::string long_b = std::string(4000, 'b') + "@x.example";
  auto a = make_triplet(ip, long_a, "r@" + std::string(3000, 'r') + ".example", o);
  auto b = make_triplet(ip, long_b, "r@" + std::string(3000, 'r') + ".example", o);
  EXPECT_EQ(a.sender.rfind("sha1:", 0), 0u) << a.sender.substr(0, 40);
  EXPECT_EQ(a.recipient.rfind("sha1:", 0), 0u);
  EXPECT_NE(a.sender, b.sender);
  EXPECT_LT(make_keys(a, "mxg:", false).triplet.size(), 150u);
  auto normal = make_triplet(ip, "a@x.example", "r@y.example", o);
  EXPECT_EQ(normal.sender, "a@x.example");
}

TEST(TripletTest, KeysShareAHashTagPerNetwork) {
  GreylistOptions o;
  auto t = make_triplet(*common::net::IpAddress::parse("198.51.100.77"), "a@b.example",
                        "c@d.example", o);
  auto k = make_keys(t, "mxg:", false);
  EXPECT_EQ(k.triplet, "mxg:gl:{198.51.100.0}:t:198.51.100.0/a@b.example/c@d.example");
  EXPECT_EQ(k.awl, "mxg:gl:{198.51.100.0}:awl:198.51.100.77");
  auto p = make_keys(t, "mxg:", true);
  EXPECT_EQ(p.triplet.find("198.51"), std::string::npos) << "privacy mode leaks the address";
  EXPECT_EQ(p.triplet.find("b.example"), std::string::npos);
  auto tag = p.triplet.substr(0, p.triplet.find('}') + 1);
  EXPECT_EQ(p.awl.substr(0, tag.size()), tag);
}

GreylistOptions no_files() {
  GreylistOptions o;
  o.whitelist_clients.clear();
  o.whitelist_recipients.clear();
  return o;
}

TEST(GreylistOptionsTest, RejectsInconsistentSettings) {
  GreylistOptions o = no_files();
  EXPECT_NO_THROW(o.validate());
  o.retry_window = o.delay;
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = no_files();
  o.on_store_error = "reject";
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = no_files();
  o.ipv4_prefix = 33;
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o = no_files();
  o.whitelist_clients = {"/nonexistent/whitelist_clients"};
  EXPECT_THROW(o.validate(), common::config::OptionError);
}

// The built-in whitelist files may be missing (a daemon started from a build tree with a
// minimal config must run); a file named in the config or on the command line must exist.
TEST(GreylistOptionsTest, MissingDefaultWhitelistsAreNotAnErrorNamedOnesAre) {
  testing::TempDir dir;
  GreylistOptions o;
  ASSERT_TRUE(o.whitelist_clients.at(0).is_default);  // the shipped defaults are built-ins
  ASSERT_TRUE(o.whitelist_recipients.at(0).is_default);
  o.whitelist_clients = {WhitelistFile::built_in((dir / "whitelist_clients").string()),
                         WhitelistFile::built_in((dir / "whitelist_clients.local").string())};
  o.whitelist_recipients = {WhitelistFile::built_in((dir / "whitelist_recipients").string())};
  EXPECT_NO_THROW(o.validate());

  // The same path set through the option parser (config file or command line) is an error
  // that names the option and the file.
  common::config::Binder binder;
  o.bind(binder);
  const auto* entry = binder.find("greylist-whitelist-recipients");
  ASSERT_NE(entry, nullptr);
  entry->clear();
  entry->parse((dir / "whitelist_recipients").string());
  try {
    o.validate();
    FAIL() << "a missing file named in the configuration must be an error";
  } catch (const common::config::OptionError& ex) {
    EXPECT_EQ(ex.option(), "greylist-whitelist-recipients");
    EXPECT_NE(std::string(ex.what()).find((dir / "whitelist_recipients").string()),
              std::string::npos)
        << ex.what();
  }
}

// The warning comes once per load (start, reload), with the file name; a missing ".local"
// file is silent, as in postgrey.
TEST(GreylisterTest, WarnsOnceAboutEachMissingDefaultWhitelist) {
  testing::TempDir dir;
  GreylistOptions o;
  o.whitelist_clients = {WhitelistFile::built_in((dir / "whitelist_clients").string()),
                         WhitelistFile::built_in((dir / "whitelist_clients.local").string())};
  o.whitelist_recipients = {WhitelistFile::built_in((dir / "whitelist_recipients").string())};
  common::redis::ClientOptions ro;
  ro.url = "redis://127.0.0.1:1/0";  // never contacted: the constructor only loads files
  common::redis::Pool pool(ro);
  ::testing::internal::CaptureStderr();
  {
    Greylister g(o, pool, [] { return std::int64_t{0}; });
  }
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
  EXPECT_NE(
      err.find("warning: greylist: " + (dir / "whitelist_clients").string() + " does not exist"),
      std::string::npos)
      << err;
  EXPECT_NE(err.find((dir / "whitelist_recipients").string() + " does not exist"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find(".local"), std::string::npos) << err;
}

TEST(GreylisterTest, DefaultTextIsOursWithoutAForeignUrl) {
  GreylistOptions o;
  EXPECT_EQ(o.text, "Greylisted, please try again later");
  EXPECT_EQ(o.text.find("http"), std::string::npos) << "no foreign URL in the default reply";
}

}  // namespace
}  // namespace mxguard::policyd

namespace mxguard::policyd {
namespace {

// Found by the postgrey differential test: Perl's split drops a trailing empty field, so
// "prvs=TAG=@domain" is not BATV-stripped by postgrey.
TEST(NormalizeSenderTest, BatvWithEmptyUserIsKeptAsPostgreyDoes) {
  EXPECT_EQ(normalize_sender("prvs=0123abcdef=@s.example"), "prvs=0123abcdef=@s.example");
}

}  // namespace
}  // namespace mxguard::policyd
