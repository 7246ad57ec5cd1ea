// Key loading and key selection: simple options, OpenDKIM KeyTable/SigningTable (plain and
// refile:, "%" domains, dual signing), file:line errors, refused keys, From address parsing.
#include "milters/dkim/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mail/from.h"
#include "milters/dkim/options.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

using testing::TempDir;

class DkimKeysTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto gen = [](const std::string& name, std::vector<std::string> args) {
      std::vector<std::string> argv{"openssl", "genpkey"};
      argv.insert(argv.end(), args.begin(), args.end());
      argv.push_back("-out");
      argv.push_back((*dir_ / name).string());
      ASSERT_EQ(testing::run_command(argv), 0);
    };
    gen("rsa.pem", {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"});
    gen("ed.pem", {"-algorithm", "ed25519"});
    gen("small.pem", {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:768"});
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& n) { return (*dir_ / n).string(); }

  static TempDir* dir_;
};
TempDir* DkimKeysTest::dir_ = nullptr;

TEST_F(DkimKeysTest, LoadsRsaAndEd25519AndDerivesRecords) {
  auto rsa = load_private_key(path("rsa.pem"));
  EXPECT_EQ(rsa.type, KeyType::kRsa);
  EXPECT_EQ(rsa.bits, 1024);
  EXPECT_EQ(rsa.public_record.rfind("v=DKIM1; k=rsa; p=MIGf", 0), 0u) << rsa.public_record;
  auto ed = load_private_key(path("ed.pem"));
  EXPECT_EQ(ed.type, KeyType::kEd25519);
  EXPECT_EQ(ed.public_p.size(), 44u);
}

TEST_F(DkimKeysTest, Rfc8463SeedGivesThePublishedKey) {
  auto ed = load_private_key(std::string(MXGUARD_SOURCE_DIR) +
                             "/tests/data/conformance/dkim/rfc8463/ed25519-brisbane.seed.b64");
  EXPECT_EQ(ed.public_p, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
}

TEST_F(DkimKeysTest, ShortAndBrokenKeysAreRefused) {
  EXPECT_THROW(load_private_key(path("small.pem")), KeyError);
  testing::write_file(*dir_ / "junk.pem", "not a key\n");
  EXPECT_THROW(load_private_key(path("junk.pem")), KeyError);
  EXPECT_THROW(load_private_key(path("absent.pem")), KeyError);
  try {
    load_private_key(path("small.pem"));
  } catch (const KeyError& ex) {
    EXPECT_NE(std::string(ex.what()).find("768 bits refused"), std::string::npos) << ex.what();
  }
}

TEST_F(DkimKeysTest, SimpleOptionsSignEveryDomainWithEveryPair) {
  Options o;
  o.domain = {"Example.TEST", "other.test"};
  o.selector = {"rsa", "ed"};
  o.key_file = {path("rsa.pem"), path("ed.pem")};
  o.signing_key = {"third.test:s1:" + path("ed.pem")};
  KeyStore ks(o);
  auto k = ks.keys_for("alice@example.test");
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].selector, "rsa");
  EXPECT_EQ(k[1].key->type, KeyType::kEd25519);
  EXPECT_EQ(ks.keys_for("bob@OTHER.test").size(), 2u);
  EXPECT_EQ(ks.keys_for("x@third.test").size(), 1u);
  EXPECT_TRUE(ks.keys_for("x@sub.example.test").empty());
  EXPECT_TRUE(ks.keys_for("no-at-sign").empty());
}

TEST_F(DkimKeysTest, OpenDkimRefileTablesWithWildcardsAndPercent) {
  testing::write_file(*dir_ / "KeyTable",
                      "# OpenDKIM key table\n"
                      "rsa   %:mail2024:" +
                          path("rsa.pem") +
                          "\n"
                          "ed    example.test:ed2024:" +
                          path("ed.pem") + "\n");
  testing::write_file(*dir_ / "SigningTable",
                      "*@example.test   rsa\n"
                      "*@example.test   ed\n"
                      "*@*.example.org  rsa   # subdomains\n");
  Options o;
  o.key_table = path("KeyTable");
  o.signing_table = "refile:" + path("SigningTable");
  KeyStore ks(o);
  auto k = ks.keys_for("alice@example.test");
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].domain, "example.test");  // "%" became the sender's domain
  EXPECT_EQ(k[0].selector, "mail2024");
  EXPECT_EQ(k[1].selector, "ed2024");
  k = ks.keys_for("bob@lists.example.org");
  ASSERT_EQ(k.size(), 1u);
  EXPECT_EQ(k[0].domain, "lists.example.org");
  EXPECT_TRUE(ks.keys_for("bob@example.org").empty());
}

TEST_F(DkimKeysTest, InventoryNamesEveryDomainAndSelectorOnce) {
  testing::write_file(*dir_ / "KeyTable3", "rsa   %:mail2024:" + path("rsa.pem") + "\n" +
                                               "ed    example.test:ed2024:" + path("ed.pem") +
                                               "\n"
                                               "spare example.test:spare:" +
                                               path("ed.pem") + "\n");
  testing::write_file(*dir_ / "SigningTable3",
                      "*@example.test   rsa\n"
                      "*@example.test   ed\n"
                      "ceo@example.test ed\n"
                      "*@*.example.org  rsa\n"
                      "*@other.test     rsa\n");
  Options o;
  o.domain = {"simple.test"};
  o.selector = {"s1"};
  o.key_file = {path("ed.pem")};
  o.key_table = path("KeyTable3");
  o.signing_table = "refile:" + path("SigningTable3");
  auto inv = KeyStore(o).inventory();
  std::vector<std::string> got;
  for (const auto& k : inv.keys) got.push_back(k.domain + "/" + k.selector);
  // The unused "spare" key is not signed with; "ed" for example.test is listed once.
  EXPECT_EQ(got, (std::vector<std::string>{"simple.test/s1", "example.test/mail2024",
                                           "example.test/ed2024", "other.test/mail2024"}));
  ASSERT_EQ(inv.unnamed.size(), 1u);
  EXPECT_NE(inv.unnamed[0].find("*@*.example.org"), std::string::npos) << inv.unnamed[0];
}

TEST_F(DkimKeysTest, PlainSigningTableMostSpecificWins) {
  testing::write_file(*dir_ / "KeyTable2", "a example.test:a:" + path("rsa.pem") + "\n" +
                                               "b example.test:b:" + path("ed.pem") + "\n");
  testing::write_file(*dir_ / "SigningTable2", "ceo@example.test b\nexample.test a\n");
  Options o;
  o.key_table = path("KeyTable2");
  o.signing_table = path("SigningTable2");
  KeyStore ks(o);
  ASSERT_EQ(ks.keys_for("ceo@example.test").size(), 1u);
  EXPECT_EQ(ks.keys_for("ceo@example.test")[0].selector, "b");
  EXPECT_EQ(ks.keys_for("anyone@example.test")[0].selector, "a");
}

TEST_F(DkimKeysTest, TableErrorsNameFileAndLine) {
  testing::write_file(*dir_ / "BadKeys", "a example.test:a:" + path("rsa.pem") + "\n\n" +
                                             "b example.test:b:" + path("small.pem") + "\n");
  testing::write_file(*dir_ / "Sign", "*@example.test a\n");
  Options o;
  o.key_table = path("BadKeys");
  o.signing_table = "refile:" + path("Sign");
  try {
    KeyStore ks(o);
    FAIL() << "expected KeyError";
  } catch (const KeyError& ex) {
    EXPECT_NE(std::string(ex.what()).find(path("BadKeys") + ":3: "), std::string::npos)
        << ex.what();
  }
  testing::write_file(*dir_ / "GoodKeys", "a example.test:a:" + path("rsa.pem") + "\n");
  testing::write_file(*dir_ / "Sign2", "*@example.test a\n*@x.test nosuchkey\n");
  o.key_table = path("GoodKeys");
  o.signing_table = "refile:" + path("Sign2");
  try {
    KeyStore ks(o);
    FAIL() << "expected KeyError";
  } catch (const KeyError& ex) {
    EXPECT_NE(std::string(ex.what()).find(path("Sign2") + ":2: key name 'nosuchkey'"),
              std::string::npos)
        << ex.what();
  }
  testing::write_file(*dir_ / "Malformed", "a example.test-no-colons\n");
  o.key_table = path("Malformed");
  EXPECT_THROW(KeyStore ks(o), KeyError);
}

TEST_F(DkimKeysTest, ValidateReportsKeyProblemsAsOptionErrors) {
  Options o;
  o.domain = {"example.test"};
  o.selector = {"s"};
  o.key_file = {path("small.pem")};
  EXPECT_THROW(o.validate(), common::config::OptionError);
  o.key_file = {path("rsa.pem")};
  EXPECT_NO_THROW(o.validate());
  o.on_bad_signature = "bounce";
  EXPECT_THROW(o.validate(), common::config::OptionError);
}

TEST(DkimFromAddressTest, ParsesCommonForms) {
  EXPECT_EQ(from_address(" Joe SixPack <joe@Football.Example.COM>"), "joe@football.example.com");
  EXPECT_EQ(from_address(" joe@example.com (Joe)"), "joe@example.com");
  EXPECT_EQ(from_address(" \"Doe, <fake@evil.test>\" <jd@example.com>"), "jd@example.com");
  EXPECT_EQ(from_address(" undisclosed-recipients:;"), "");
  EXPECT_EQ(from_address(""), "");
}

// Issue 15: dkim had its own From parser (cut at the last '<' and the first comma) that could
// name another author than mxguard-dmarc's. It is the same parser now: where DMARC sees no
// single author, nothing is signed; where it sees one, that is the signing address.
TEST(DkimFromAddressTest, AgreesWithTheDmarcParser) {
  EXPECT_EQ(from_address(" a@evil.example, b@bank.example"), "");
  EXPECT_EQ(from_address(" <joe@example.com>@evil.test"), "");
  EXPECT_EQ(from_address(" Bank <ceo@bank.example> <x@evil.example>"), "");
  for (const char* v : {" Joe <joe@Example.COM>", " \"a,b\" <q@x.example>", " (c) x@y.example",
                        " a@evil.example, b@bank.example", " <joe@example.com>@evil.test",
                        " =?utf-8?q?J=C3=B6rg?= <j@x.example>", " grp: a@x.example;"}) {
    auto parsed = common::mail::parse_from(v);
    std::string expected;
    if (parsed.ok() && parsed.mailboxes.size() == 1) {
      expected = parsed.mailboxes[0].local + "@" + parsed.mailboxes[0].domain;
    }
    EXPECT_EQ(from_address(v), expected) << v;
  }
}

TEST(DkimWildcardTest, Matches) {
  EXPECT_TRUE(wildcard_match("*@example.com", "a@EXAMPLE.com"));
  EXPECT_TRUE(wildcard_match("*", ""));
  EXPECT_TRUE(wildcard_match("a*b*c", "axxbyyc"));
  EXPECT_FALSE(wildcard_match("*@example.com", "a@example.com.evil"));
  EXPECT_FALSE(wildcard_match("a*b", "ac"));
}

}  // namespace
}  // namespace mxguard::milter::dkim

namespace mxguard::milter::dkim {
namespace {

// Reloads read keys as the daemon user: a key that user cannot read is a start-up error.
TEST(DkimKeyAccessTest, KeysMustBeReadableByTheDaemonUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  testing::TempDir dir;
  auto key = (dir / "k.pem").string();
  ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out", key}), 0);
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);  // root-owned, root-only
  Options o;
  o.signing_key = {"example.test:s1:" + key};
  o.daemon.user = "nobody";
  try {
    KeyStore ks(o);
    FAIL() << "a key nobody cannot read was accepted";
  } catch (const KeyError& ex) {
    EXPECT_NE(std::string(ex.what()).find("not readable by user 'nobody'"), std::string::npos)
        << ex.what();
  }
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  EXPECT_NO_THROW(KeyStore ks(o));
  o.daemon.user.clear();  // no user switch: root reads it
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  EXPECT_NO_THROW(KeyStore ks(o));
}

}  // namespace
}  // namespace mxguard::milter::dkim
