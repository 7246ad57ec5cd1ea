// The From header parser: display names, quoted commas, comments, groups, encoded words, the
// multi-address and garbage cases behind OpenDMARC's CVE-2019-16378 and CVE-2021-34555, and the
// limits.
#include "common/mail/from.h"

#include <gtest/gtest.h>

namespace mxguard::common::mail {
namespace {

std::vector<std::string> domains(std::string_view v, FromLimits limits = {}) {
  FromParse p = parse_from(v, limits);
  EXPECT_TRUE(p.ok()) << v << ": " << p.error;
  std::vector<std::string> out;
  for (const auto& m : p.mailboxes) out.push_back(m.domain);
  return out;
}

std::string error(std::string_view v, FromLimits limits = {}) {
  FromParse p = parse_from(v, limits);
  EXPECT_FALSE(p.ok()) << v << " parsed as " << (p.mailboxes.empty() ? "" : p.mailboxes[0].domain);
  EXPECT_TRUE(p.mailboxes.empty());
  return p.error;
}

using V = std::vector<std::string>;

TEST(DmarcFrom, PlainAndNamedAddresses) {
  EXPECT_EQ(domains("user@example.com"), V{"example.com"});
  EXPECT_EQ(domains(" John Doe <john@Example.COM.>"), V{"example.com"});
  EXPECT_EQ(domains("\"Doe, John\" <john@x.example>"), V{"x.example"});
  EXPECT_EQ(domains("\"quoted@evil.example\" <real@good.example>"), V{"good.example"});
  EXPECT_EQ(domains("\"a\\\"b\"@x.example"), V{"x.example"});
  EXPECT_EQ(domains("\"\"@x.example"), V{"x.example"});  // an empty quoted local part is valid
  EXPECT_EQ(domains("\"\"\"\"\"\"@x.example"), V{"x.example"});  // found by fuzz_dmarc
  EXPECT_EQ(domains("<@relay.example:user@x.example>"), V{"x.example"});
  EXPECT_EQ(domains("John\r\n\t<john@folded.example>"), V{"folded.example"});
  EXPECT_EQ(parse_from("\"Doe, J.\" <j.doe@x.example>").mailboxes.at(0).local, "j.doe");
}

TEST(DmarcFrom, CommentsAreNotAddresses) {
  EXPECT_EQ(domains("John (comma, inside) <j@x.example>"), V{"x.example"});
  EXPECT_EQ(domains("(<evil@bad.example>) a@good.example"), V{"good.example"});
  EXPECT_EQ(domains("a@good.example (nested (comment <evil@bad.example>))"), V{"good.example"});
  EXPECT_EQ(domains("a@(comment)good.example"), V{"good.example"});
}

TEST(DmarcFrom, GroupsAndLists) {
  EXPECT_EQ(domains("a@x.example, b@y.example"), (V{"x.example", "y.example"}));
  EXPECT_EQ(domains("Team: a@x.example, b@y.example;"), (V{"x.example", "y.example"}));
  EXPECT_EQ(domains("a@x.example, , b@x.example"), (V{"x.example", "x.example"}));
  EXPECT_NE(error("Undisclosed recipients:;"), "");
  EXPECT_NE(error("a@x.example;"), "");
  // An unclosed group (an unquoted colon in a display name) ends with the header.
  EXPECT_EQ(domains("Team: a@x.example"), V{"x.example"});
  EXPECT_EQ(domains("Support: Acme <s@acme.example>"), V{"acme.example"});
  EXPECT_EQ(domains("evil@bad.example: <ceo@bank.example>"), V{"bank.example"});
  EXPECT_NE(error("Team:"), "");  // no address at all
  EXPECT_NE(error("A: B: a@x.example;;"), "");
}

TEST(DmarcFrom, EncodedWordsAreOneAtom) {
  EXPECT_EQ(domains("=?utf-8?q?Doe,_John?= <j@x.example>"), V{"x.example"});
  EXPECT_EQ(domains("=?iso-8859-1?b?SsO2cmc=?= <j@x.example>"), V{"x.example"});
  // An encoded word hiding a second address still has two angle addresses in its member.
  EXPECT_NE(error("=?utf-8?q?<evil@bad.example>,?= <j@good.example>"), "");
}

TEST(DmarcFrom, Cve201916378MultiAddressIsReportedWhole) {
  // OpenDMARC evaluated only the first of these; we return both so policy can decide.
  EXPECT_EQ(domains("good@aligned.example, evil@paypal.example"),
            (V{"aligned.example", "paypal.example"}));
  EXPECT_EQ(domains("<good@aligned.example>, <evil@paypal.example>"),
            (V{"aligned.example", "paypal.example"}));
}

TEST(DmarcFrom, Cve202134555GarbageNeverCrashesOrPasses) {
  for (const char* v : {"", " ", ",", ", ,", "<>", "<", ">", "@", "a@", "@x.example", "\"", "(",
                        ")", "a@x.example,", "\"unterminated@x.example",
                        "a@x.example (unterminated", "<a@x.example", "a@x.example>"}) {
    FromParse p = parse_from(v);
    if (p.ok()) {
      // Only the trailing empty member variant may parse: it has exactly the one address.
      EXPECT_EQ(std::string(v), "a@x.example,") << v;
    }
  }
}

TEST(DmarcFrom, AddressErrors) {
  EXPECT_NE(error("no-at-sign"), "");
  EXPECT_NE(error("<a@x.example> <b@y.example>"), "");
  EXPECT_NE(error("a@[192.0.2.1]"), "");
  EXPECT_NE(error("a@x..example"), "");
  EXPECT_NE(error("a@-x.example"), "");
  EXPECT_NE(error("a@x.example-"), "");
  EXPECT_NE(error("a@b@x.example"), "");
  EXPECT_NE(error("a@exa mple.example"), "");
  EXPECT_EQ(domains("a@x . example"), V{"x.example"});
  EXPECT_NE(error("a@\xff\xfe.example"), "");  // invalid UTF-8 in the domain
  // Internationalised domains (SMTPUTF8 mail) become A-labels; invalid ones are errors.
  EXPECT_EQ(domains("a@b\xc3\xa4r.example"), V{"xn--br-via.example"});
  EXPECT_EQ(domains("a@B\xc3\x84R.Example"), V{"xn--br-via.example"});
  EXPECT_EQ(domains("\xc3\xa4 <a@m\xc3\xbcnchen.example>"), V{"xn--mnchen-3ya.example"});
  EXPECT_NE(error("a@b\xc3r.example"), "");  // truncated UTF-8 sequence
  EXPECT_NE(error(std::string("a@x.example\0b@y.example", 23)), "");
  EXPECT_NE(error("a@" + std::string(64, 'l') + ".example"), "");
  EXPECT_EQ(domains("\xff\xfe <a@x.example>"), V{"x.example"});  // garbage display name
}

TEST(DmarcFrom, Limits) {
  std::string fifty, fiftyone;
  for (int i = 0; i < 50; ++i) fifty += (i ? ", u" : "u") + std::to_string(i) + "@x.example";
  fiftyone = fifty + ", last@x.example";
  EXPECT_EQ(domains(fifty, FromLimits{8192, 50}).size(), 50u);
  EXPECT_NE(error(fiftyone, FromLimits{8192, 50}), "");
  std::string big = "\"" + std::string(10 * 1024, 'a') + "\" <a@x.example>";
  EXPECT_NE(error(big), "");
  EXPECT_EQ(domains(big, FromLimits{16384, 10}), V{"x.example"});
}

TEST(DmarcFrom, DomainHelpers) {
  EXPECT_EQ(normalize_domain("..Mac.COM.."), "mac.com");
  EXPECT_EQ(normalize_domain("..."), "");
  EXPECT_TRUE(valid_domain("_dmarc.example.com"));
  EXPECT_FALSE(valid_domain("mac...com"));
  EXPECT_FALSE(valid_domain(std::string(254, 'a')));
}

}  // namespace
}  // namespace mxguard::common::mail
