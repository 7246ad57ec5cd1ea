// Unit tests of mxguard-grey's pure parts: db_dump's printable format (both postgrey files,
// escapes, malformed and truncated dumps), postgrey key splitting, and the time formatting.
#include "policyd/grey_admin.h"

#include <gtest/gtest.h>

namespace mxguard::policyd {
namespace {

// What `db5.3_dump -p postgrey.db` printed for a postgrey 1.37 database (see the integration
// test, which makes one with a real postgrey).
constexpr const char* kTriplets =
    "VERSION=3\n"
    "format=print\n"
    "type=btree\n"
    "db_pagesize=4096\n"
    "HEADER=END\n"
    " 198.51.100.0/a/b@s.example/r@x.example\n"
    " 1700000000,1700000100\n"
    " 2001:db8:0:0:0:0:0:0//r@x.example\n"
    " 1700000000,1700000000\n"
    "DATA=END\n";

constexpr const char* kClients =
    "VERSION=3\n"
    "format=print\n"
    "type=btree\n"
    "db_pagesize=4096\n"
    "HEADER=END\n"
    " 198.51.100.7\n"
    " 1,1700000100\n"
    "DATA=END\n";

TEST(ParseDbDump, ReadsPostgreyTripletDatabase) {
  auto r = parse_db_dump(kTriplets);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].key, "198.51.100.0/a/b@s.example/r@x.example");
  EXPECT_EQ(r[0].value, "1700000000,1700000100");
  EXPECT_EQ(r[1].key, "2001:db8:0:0:0:0:0:0//r@x.example");
  EXPECT_EQ(r[1].value, "1700000000,1700000000");
}

TEST(ParseDbDump, ReadsPostgreyClientDatabase) {
  auto r = parse_db_dump(kClients);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].key, "198.51.100.7");
  EXPECT_EQ(r[0].value, "1,1700000100");
}

TEST(ParseDbDump, EmptyDatabase) {
  EXPECT_TRUE(parse_db_dump("VERSION=3\nformat=print\nHEADER=END\nDATA=END\n").empty());
}

TEST(ParseDbDump, DecodesHexAndBackslashEscapes) {
  auto r = parse_db_dump(
      "format=print\nHEADER=END\n 1.2.3.0/a\\5cb@x/r\\09@y\n 1,2\\00\n \\\\k\\7E\n v\\ff\n"
      "DATA=END\n");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].key, "1.2.3.0/a\\b@x/r\t@y");
  EXPECT_EQ(r[0].value, std::string("1,2\0", 4));
  EXPECT_EQ(r[1].key, "\\k~");
  EXPECT_EQ(r[1].value, "v\xff");
}

TEST(ParseDbDump, AcceptsMissingFinalNewline) {
  EXPECT_EQ(parse_db_dump("HEADER=END\n k\n v\nDATA=END").size(), 1u);
}

TEST(ParseDbDump, RejectsMalformedInput) {
  // No header end, so no data either.
  EXPECT_THROW(parse_db_dump("VERSION=3\nformat=print\n"), DumpError);
  // Cut short: a partial dump must never be imported as the whole database.
  EXPECT_THROW(parse_db_dump("HEADER=END\n k\n v\n"), DumpError);
  // A key without its value.
  EXPECT_THROW(parse_db_dump("HEADER=END\n k\nDATA=END\n"), DumpError);
  // Data lines start with a space.
  EXPECT_THROW(parse_db_dump("HEADER=END\nk\n v\nDATA=END\n"), DumpError);
  // Bad escapes.
  EXPECT_THROW(parse_db_dump("HEADER=END\n k\\zz\n v\nDATA=END\n"), DumpError);
  EXPECT_THROW(parse_db_dump("HEADER=END\n k\\4\n v\nDATA=END\n"), DumpError);
  // db_dump without -p prints hex pairs.
  EXPECT_THROW(parse_db_dump("format=bytevalue\nHEADER=END\n 6b\n 76\nDATA=END\n"), DumpError);
  // Not a header line.
  EXPECT_THROW(parse_db_dump("hello\nHEADER=END\nDATA=END\n"), DumpError);
  // A second database after the first.
  EXPECT_THROW(parse_db_dump("HEADER=END\nDATA=END\nVERSION=3\n"), DumpError);
}

TEST(ParseDbDump, ErrorsNameTheLine) {
  try {
    parse_db_dump("HEADER=END\n k\nbroken\n");
    FAIL();
  } catch (const DumpError& ex) {
    EXPECT_NE(std::string(ex.what()).find("line 3"), std::string::npos) << ex.what();
  }
}

TEST(SplitPostgreyKey, NetSenderRecipient) {
  auto k = split_postgrey_key("198.51.100.0/alice@s.example/bob@r.example");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->net, "198.51.100.0");
  EXPECT_EQ(k->sender, "alice@s.example");
  EXPECT_EQ(k->recipient, "bob@r.example");
}

TEST(SplitPostgreyKey, SenderWithSlashesAndNullSender) {
  auto k = split_postgrey_key("198.51.100.0/a/b/c@s.example/bob@r.example");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->sender, "a/b/c@s.example");
  EXPECT_EQ(k->recipient, "bob@r.example");
  auto n = split_postgrey_key("198.51.100.0//bob@r.example");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->sender, "");
  EXPECT_EQ(n->recipient, "bob@r.example");
}

TEST(SplitPostgreyKey, Ipv6AsPostgreyWritesIt) {
  auto k = split_postgrey_key("2001:db8:0:0:0:0:0:0/a@s.example/b@r.example");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->net, "2001:db8:0:0:0:0:0:0");
  EXPECT_EQ(k->sender, "a@s.example");
}

TEST(SplitPostgreyKey, LookupByHostPrefixLength) {
  auto k = split_postgrey_key("198.51.100.7/32/a@s.example/b@r.example");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->net, "198.51.100.7");
  EXPECT_EQ(k->sender, "a@s.example");
  auto v6 = split_postgrey_key("2001:db8:0:0:0:0:0:7/128//b@r.example");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->sender, "");
  EXPECT_EQ(v6->recipient, "b@r.example");
  // A sender that is literally "32" is a sender, not a prefix length.
  auto s = split_postgrey_key("198.51.100.0/32/b@r.example");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sender, "32");
  EXPECT_EQ(s->recipient, "b@r.example");
}

TEST(SplitPostgreyKey, RejectsWhatIsNoTriplet) {
  EXPECT_FALSE(split_postgrey_key(""));
  EXPECT_FALSE(split_postgrey_key("198.51.100.0"));
  EXPECT_FALSE(split_postgrey_key("/a@s/b@r"));
  EXPECT_FALSE(split_postgrey_key("not-an-ip/a@s/b@r"));
  EXPECT_FALSE(split_postgrey_key("198.51.100.0/b@r.example"));  // no sender boundary
  EXPECT_FALSE(split_postgrey_key("198.51.100.0/a@s/"));         // no recipient
}

TEST(IsHashedKey, FortyLowerHexDigits) {
  EXPECT_TRUE(is_hashed_key("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
  EXPECT_FALSE(is_hashed_key("da39a3ee5e6b4b0d3255bfef95601890afd8070"));
  EXPECT_FALSE(is_hashed_key("198.51.100.0/a@s/b@r"));
}

TEST(Formatting, IsoTimeAndHumanDurations) {
  EXPECT_EQ(iso_time(1700000000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(human_duration(0), "0s");
  EXPECT_EQ(human_duration(59), "59s");
  EXPECT_EQ(human_duration(300), "5m");
  EXPECT_EQ(human_duration(3 * 86400 + 4 * 3600 + 5), "3d4h");
  EXPECT_EQ(human_duration(86400 + 5), "1d");
  EXPECT_EQ(human_duration(-90), "-1m30s");
}

}  // namespace
}  // namespace mxguard::policyd
