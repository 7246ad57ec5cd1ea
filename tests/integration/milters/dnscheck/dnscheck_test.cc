// The mxguard-dnscheck binary against a real DNS server (DnsServer) and a real mxguard-dkim
// configuration (KeyTable + refile: SigningTable): all good, missing records, a wrong DKIM key,
// bad syntax in SPF, DKIM and DMARC, too many SPF lookups (counted through includes), DMARC
// without rua, a parent domain's DMARC record, a SERVFAIL, the JSON document, and exit 2 for
// usage and configuration errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "milters/dkim/keygen.h"
#include "milters/dkim/keys.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/milters/dnscheck/mxguard-dnscheck";

class DnscheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string table, signing;
    for (const char* d :
         {"good", "missing", "wrongkey", "badsyntax", "lookups", "norua", "dnsfail"}) {
      std::string pem = (*dir_ / (std::string(d) + ".pem")).string();
      ASSERT_EQ(run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out", pem}), 0);
      table += std::string(d) + " " + d + ".test:s1:" + pem + "\n";
      signing += std::string("*@") + d + ".test " + d + "\n";
    }
    ASSERT_EQ(run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out",
                           (*dir_ / "other.pem").string()}),
              0);
    write_file(*dir_ / "KeyTable", table);
    write_file(*dir_ / "SigningTable", signing);
    write_file(*dir_ / "dkim.conf",
               "key-table = " + (*dir_ / "KeyTable").string() +
                   "\nsigning-table = refile:" + (*dir_ / "SigningTable").string() + "\n");
    auto key = [](const std::string& name) {
      return milter::dkim::load_private_key((*dir_ / (name + ".pem")).string()).public_record;
    };
    auto dkim = [&](const std::string& domain, const std::string& value) {
      return milter::dkim::zone_txt("s1._domainkey." + domain + ".", value);
    };
    // Everything but the record under test is right for every domain.
    auto base = [&](const std::string& d, bool spf, bool dkim_record, bool dmarc) {
      std::string z = d + ". IN SOA ns1." + d + ". hostmaster." + d + ". 1 3600 600 86400 60\n" +
                      d + ". IN MX 10 mx." + d + ".\nmx." + d + ". IN A 192.0.2.10\n";
      if (spf) z += d + ". IN TXT \"v=spf1 ip4:192.0.2.10 -all\"\n";
      if (dkim_record) z += dkim(d, key(d.substr(0, d.find('.'))));
      if (dmarc) z += "_dmarc." + d + ". IN TXT \"v=DMARC1; p=reject; rua=mailto:agg@" + d + "\"\n";
      return z;
    };
    std::string zone =
        base("good.test", true, true, true) +
        "missing.test. IN SOA ns1.missing.test. h.missing.test. 1 3600 600 86400 60\n"
        "missing.test. IN A 192.0.2.99\n" +
        base("wrongkey.test", true, false, true) + dkim("wrongkey.test", key("other")) +
        base("badsyntax.test", false, false, false) +
        "badsyntax.test. IN TXT \"v=spf1 ip4:192.0.2.300 -all\"\n"
        "s1._domainkey.badsyntax.test. IN TXT \"v=DKIM1; k=ed25519; p=@@@\"\n"
        "_dmarc.badsyntax.test. IN TXT \"v=DMARC1; p=always\"\n" +
        base("lookups.test", false, true, true) +
        "lookups.test. IN TXT \"v=spf1 ip4:192.0.2.10 include:i1.lookups.test "
        "include:i2.lookups.test include:i3.lookups.test -all\"\n"
        "h.lookups.test. IN A 192.0.2.20\n";
    for (int i = 1; i <= 3; ++i) {
      zone += "i" + std::to_string(i) +
              ".lookups.test. IN TXT \"v=spf1 a:h.lookups.test mx:lookups.test "
              "a:h.lookups.test -all\"\n";
    }
    zone += base("norua.test", true, true, false) +
            "_dmarc.norua.test. IN TXT \"v=DMARC1; p=reject\"\n" +
            base("dnsfail.test", true, true, false) + "!servfail _dmarc.dnsfail.test.\n";
    dns_ = new DnsServer(zone);
  }
  static void TearDownTestSuite() {
    delete dns_;
    delete dir_;
  }

  // Runs the binary with the test's configuration; extra arguments (options, domains) last.
  static std::pair<int, std::string> dnscheck(std::vector<std::string> extra) {
    std::vector<std::string> argv{kBinary,
                                  "--dkim-config",
                                  (*dir_ / "dkim.conf").string(),
                                  "--dns-servers",
                                  dns_->server_spec(),
                                  "--dns-timeout",
                                  "2s",
                                  "--sending-ip",
                                  "192.0.2.10"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string out;
    int rc = run_command(argv, &out);
    return {rc, out};
  }

  static TempDir* dir_;
  static DnsServer* dns_;
};
TempDir* DnscheckTest::dir_ = nullptr;
DnsServer* DnscheckTest::dns_ = nullptr;

TEST_F(DnscheckTest, AllGood) {
  auto [rc, out] = dnscheck({"--mx", "mx.good.test", "good.test"});
  EXPECT_EQ(rc, 0) << out << dns_->log();
  EXPECT_THAT(out, HasSubstr("  SPF    good.test: ok\n"));
  EXPECT_THAT(out, HasSubstr("  DKIM   s1._domainkey.good.test: ok\n"));
  EXPECT_THAT(out, HasSubstr("  DMARC  _dmarc.good.test: ok\n"));
  EXPECT_THAT(out, HasSubstr("  MX     good.test: ok\n"));
  EXPECT_THAT(out, HasSubstr("4 records: 4 ok, 0 warning(s), 0 mismatch(es)"));
}

TEST_F(DnscheckTest, MissingRecordsGetTheRecordsToPublish) {
  auto [rc, out] = dnscheck({"missing.test"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("  SPF    missing.test: MISMATCH\n    mismatch (missing): no SPF"));
  EXPECT_THAT(out,
              HasSubstr("fix:       missing.test.\tIN\tTXT\t( \"v=spf1 ip4:192.0.2.10 -all\" )"));
  std::string public_record =
      milter::dkim::load_private_key((*dir_ / "missing.pem").string()).public_record;
  EXPECT_THAT(out, HasSubstr("  DKIM   s1._domainkey.missing.test: MISMATCH\n"
                             "    mismatch (missing): s1._domainkey.missing.test: no TXT record"));
  EXPECT_THAT(out, HasSubstr("fix:       s1._domainkey.missing.test.\tIN\tTXT\t( \"" +
                             public_record + "\" )"));
  EXPECT_THAT(out, HasSubstr("fix:       _dmarc.missing.test.\tIN\tTXT\t( \"v=DMARC1; p=none; "
                             "rua=mailto:postmaster@missing.test\" )"));
  EXPECT_THAT(out, HasSubstr("  MX     missing.test: WARNING\n    warning (missing): no MX"));
}

TEST_F(DnscheckTest, WrongDkimKey) {
  auto [rc, out] = dnscheck({"wrongkey.test"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("mismatch (wrong-key): s1._domainkey.wrongkey.test: p= does not "
                             "match the private key"));
  std::string ours =
      milter::dkim::load_private_key((*dir_ / "wrongkey.pem").string()).public_record;
  std::string theirs = milter::dkim::load_private_key((*dir_ / "other.pem").string()).public_record;
  EXPECT_THAT(out, HasSubstr("published: \"" + theirs + "\""));
  EXPECT_THAT(out, HasSubstr("expected:  " + ours + " (the public half of"));
  EXPECT_THAT(out, HasSubstr("fix:       s1._domainkey.wrongkey.test.\tIN\tTXT\t( \"" + ours));
  EXPECT_THAT(out, HasSubstr("  SPF    wrongkey.test: ok\n"));
}

TEST_F(DnscheckTest, BadSyntaxInEveryRecord) {
  auto [rc, out] = dnscheck({"badsyntax.test"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("  SPF    badsyntax.test: MISMATCH\n    mismatch (bad-syntax): "));
  EXPECT_THAT(out, HasSubstr("mismatch (bad-syntax): s1._domainkey.badsyntax.test: not a DKIM key "
                             "record: p= is not base64"));
  EXPECT_THAT(out, HasSubstr("  DMARC  _dmarc.badsyntax.test: MISMATCH\n    mismatch "
                             "(bad-syntax): invalid p= value"));
}

TEST_F(DnscheckTest, TooManySpfLookupsAreCountedThroughIncludes) {
  auto [rc, out] = dnscheck({"lookups.test"});
  EXPECT_EQ(rc, 1) << out;
  // 3 includes + 3 × (a, mx, a): the evaluator's own limit stops at 10, our walk counts on.
  EXPECT_THAT(out, HasSubstr("mismatch (too-many-lookups): 12 DNS-querying terms"));
  EXPECT_THAT(out, HasSubstr("advice:    replace include: terms"));
  // Our address matches before the includes: receivers would still pass it, but the limit
  // is the record's problem whatever the sender.
  EXPECT_THAT(out, Not(HasSubstr("not-authorized")));
}

TEST_F(DnscheckTest, DmarcWithoutRua) {
  auto [rc, out] = dnscheck({"--dmarc-rua", "reports@norua.test", "norua.test"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("mismatch (no-rua): no usable rua=: no aggregate reports reach you"));
  EXPECT_THAT(out, HasSubstr("published: \"v=DMARC1; p=reject\""));
  EXPECT_THAT(out, HasSubstr("fix:       _dmarc.norua.test.\tIN\tTXT\t( \"v=DMARC1; p=reject; "
                             "rua=mailto:reports@norua.test\" )"));
}

TEST_F(DnscheckTest, SubdomainUsesItsParentsDmarcRecordAndServfailIsAnError) {
  auto [rc, out] = dnscheck({"--dkim-config", "", "mail.good.test", "dnsfail.test"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("  DMARC  _dmarc.good.test: ok\n    note: no record at "
                             "_dmarc.mail.good.test"));
  EXPECT_THAT(out, HasSubstr("  DMARC  _dmarc.dnsfail.test: ERROR\n    error (dns-error): "
                             "_dmarc.dnsfail.test: TXT lookup failed (servfail)"));
  EXPECT_THAT(out, Not(HasSubstr("DKIM")));  // no dkim-config: no keys to check
}

TEST_F(DnscheckTest, JsonCoversEverySigningDomain) {
  auto [rc, out] = dnscheck({"--json"});
  ASSERT_EQ(rc, 1) << out;
  auto doc = nlohmann::json::parse(out);
  EXPECT_EQ(doc["ok"], false);
  std::map<std::string, std::string> status;  // "domain type" → status
  std::map<std::string, std::vector<std::string>> problems;
  for (const auto& c : doc["checks"]) {
    std::string key = c["domain"].get<std::string>() + " " + c["type"].get<std::string>();
    status[key] = c["status"];
    for (const auto& p : c["problems"]) problems[key].push_back(p["code"]);
    ASSERT_TRUE(c["published"].is_array());
    ASSERT_TRUE(c["fixes"].is_array());
    ASSERT_TRUE(c["expected"].is_string());
    if (c["type"] == "dkim") {
      EXPECT_EQ(c["selector"], "s1");
    }
  }
  EXPECT_EQ(status.size(), 7u * 4u);  // seven domains from dkim.conf, four records each
  EXPECT_EQ(status["good.test dkim"], "ok");
  EXPECT_EQ(problems["missing.test spf"], std::vector<std::string>{"missing"});
  EXPECT_EQ(problems["wrongkey.test dkim"], std::vector<std::string>{"wrong-key"});
  EXPECT_EQ(problems["badsyntax.test dmarc"], std::vector<std::string>{"bad-syntax"});
  EXPECT_EQ(problems["lookups.test spf"], std::vector<std::string>{"too-many-lookups"});
  EXPECT_EQ(problems["norua.test dmarc"], std::vector<std::string>{"no-rua"});
  EXPECT_EQ(status["dnsfail.test dmarc"], "error");
  EXPECT_EQ(doc["summary"]["ok"].get<int>() + doc["summary"]["warning"].get<int>() +
                doc["summary"]["mismatch"].get<int>() + doc["summary"]["error"].get<int>(),
            28);
  const auto& fix = doc["checks"][5]["fixes"];  // missing.test's DKIM record
  ASSERT_EQ(doc["checks"][5]["name"], "s1._domainkey.missing.test");
  EXPECT_EQ(fix[0]["type"], "TXT");
  EXPECT_EQ(fix[0]["value"],
            milter::dkim::load_private_key((*dir_ / "missing.pem").string()).public_record);
}

TEST_F(DnscheckTest, UsageAndConfigurationErrorsExitTwo) {
  EXPECT_EQ(dnscheck({"--no-such-option"}).first, 2);
  EXPECT_EQ(dnscheck({"--sending-ip", "mx.good.test"}).first, 2);
  EXPECT_EQ(dnscheck({"not a domain"}).first, 2);
  auto [rc, out] = dnscheck({"--dkim-config", (*dir_ / "absent.conf").string()});
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(out, HasSubstr("absent.conf"));
  write_file(*dir_ / "empty.conf", "");
  std::tie(rc, out) = dnscheck({"--dkim-config", (*dir_ / "empty.conf").string()});
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(out, HasSubstr("name the domains as arguments"));
}

}  // namespace
}  // namespace mxguard::testing
