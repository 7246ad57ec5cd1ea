// mxguard-dnscheck's decisions without a resolver: SPF (missing, several records, syntax,
// lookup and void-lookup limits, evaluation errors, our addresses, +all), DKIM (the key judge's
// statuses as problems with the record to publish), DMARC (missing, syntax, no rua, a parent's
// record, ignored tags), MX (none, null MX, hosts without addresses, expected hosts), and the
// record editing behind the fixes.
#include "milters/dnscheck/compare.h"

#include <gtest/gtest.h>

#include "milters/dkim/keygen.h"

namespace mxguard::milter::dnscheck {
namespace {

using common::dns::Answer;
using common::dns::MxAnswer;
using common::dns::Status;
using common::spf::Outcome;
using common::spf::Result;

Answer txt(std::vector<std::string> records) { return {Status::kOk, std::move(records), 60}; }

std::vector<std::string> codes(const Check& c) {
  std::vector<std::string> out;
  for (const auto& p : c.problems) out.push_back(p.code);
  return out;
}

Outcome outcome(Result r, int terms = 1, int voids = 0, std::string problem = "") {
  Outcome o;
  o.result = r;
  o.dns_terms = terms;
  o.void_lookups = voids;
  o.problem = std::move(problem);
  return o;
}

SpfFacts spf_facts(std::vector<std::string> records, Outcome walk = outcome(Result::kFail)) {
  SpfFacts f;
  f.txt = txt(std::move(records));
  f.walk = std::move(walk);
  return f;
}

TEST(DnscheckSpfTest, GoodRecordIsOk) {
  auto facts = spf_facts({"google-site-verification=x", "v=spf1 ip4:192.0.2.1 mx -all"});
  facts.sending = {{"192.0.2.1", outcome(Result::kPass)}};
  Check c = judge_spf("example.test", facts, {"192.0.2.1"});
  EXPECT_EQ(c.status(), Severity::kOk) << (c.problems.empty() ? "" : c.problems[0].message);
  EXPECT_EQ(c.published, (std::vector<std::string>{"v=spf1 ip4:192.0.2.1 mx -all"}));
  EXPECT_TRUE(c.fixes.empty());
}

TEST(DnscheckSpfTest, MissingRecordGetsTheSuggestedOne) {
  Check c = judge_spf("example.test", spf_facts({"other=1"}), {"192.0.2.1", "2001:db8::1"});
  EXPECT_EQ(codes(c), std::vector<std::string>{"missing"});
  EXPECT_EQ(c.status(), Severity::kMismatch);
  ASSERT_EQ(c.fixes.size(), 1u);
  EXPECT_EQ(c.fixes[0].name, "example.test");
  EXPECT_EQ(c.fixes[0].value, "v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all");
  EXPECT_EQ(c.fixes[0].zone,
            "example.test.\tIN\tTXT\t( \"v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all\" )");
  SpfFacts nx;
  nx.txt = {Status::kNxDomain, {}, 0};
  c = judge_spf("example.test", nx, {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"missing"});
  EXPECT_EQ(c.fixes.at(0).value, "v=spf1 mx -all");
}

TEST(DnscheckSpfTest, SeveralRecordsAndBadSyntaxAreMismatches) {
  Check c = judge_spf("example.test", spf_facts({"v=spf1 -all", "v=spf1 mx -all"}), {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"multiple-records"});
  EXPECT_TRUE(c.fixes.empty());
  c = judge_spf("example.test", spf_facts({"v=spf1 ip4:192.0.2.300 -all"}), {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"bad-syntax"});
  EXPECT_EQ(c.fixes.size(), 1u);
}

TEST(DnscheckSpfTest, LookupLimitsCountTheWholeWalk) {
  Check c = judge_spf(
      "example.test",
      spf_facts({"v=spf1 include:a.example include:b.example -all"}, outcome(Result::kFail, 12)),
      {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"too-many-lookups"});
  EXPECT_NE(c.problems[0].message.find("12 DNS-querying terms"), std::string::npos);
  EXPECT_FALSE(c.advice.empty());
  c = judge_spf(
      "example.test",
      spf_facts({"v=spf1 a:x.example a:y.example a:z.example -all"}, outcome(Result::kFail, 3, 3)),
      {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"too-many-void-lookups"});
  // Exactly at the limits is fine.
  c = judge_spf("example.test", spf_facts({"v=spf1 mx -all"}, outcome(Result::kFail, 10, 2)), {});
  EXPECT_EQ(c.status(), Severity::kOk);
}

TEST(DnscheckSpfTest, EvaluationErrorsAndOurAddresses) {
  Check c = judge_spf(
      "example.test",
      spf_facts({"v=spf1 include:gone.test -all"},
                outcome(Result::kPermerror, 1, 0, "included domain gone.test has no SPF record")),
      {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"permerror"});
  c = judge_spf("example.test",
                spf_facts({"v=spf1 mx -all"}, outcome(Result::kTemperror, 1, 0, "DNS timeout")),
                {});
  EXPECT_EQ(c.status(), Severity::kError);
  auto facts = spf_facts({"v=spf1 mx  redirect=_spf.example.test"});
  Outcome fail = outcome(Result::kFail);
  fail.mechanism = "-all";
  facts.sending = {{"192.0.2.1", outcome(Result::kPass)}, {"192.0.2.9", fail}};
  c = judge_spf("example.test", facts, {"192.0.2.1", "192.0.2.9"});
  EXPECT_EQ(codes(c), std::vector<std::string>{"not-authorized"});
  EXPECT_NE(c.problems[0].message.find("192.0.2.9 does not pass: fail at '-all'"),
            std::string::npos)
      << c.problems[0].message;
  ASSERT_EQ(c.fixes.size(), 1u);
  EXPECT_EQ(c.fixes[0].value, "v=spf1 mx ip4:192.0.2.9 redirect=_spf.example.test");
}

TEST(DnscheckSpfTest, PlusAllIsAWarning) {
  Check c = judge_spf("example.test", spf_facts({"v=spf1 +all"}, outcome(Result::kPass, 0)), {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"all-pass"});
  EXPECT_EQ(c.status(), Severity::kWarning);
}

TEST(DnscheckSpfTest, DnsFailureIsAnErrorNotAMissingRecord) {
  SpfFacts f;
  f.txt = {Status::kServFail, {}, 0};
  Check c = judge_spf("example.test", f, {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"dns-error"});
  EXPECT_EQ(c.status(), Severity::kError);
  EXPECT_TRUE(c.fixes.empty());
}

TEST(DnscheckRecordEditTest, SpfTermsGoBeforeAllOrRedirect) {
  EXPECT_EQ(spf_with_terms("v=spf1 mx -all", {"ip4:192.0.2.1"}), "v=spf1 mx ip4:192.0.2.1 -all");
  EXPECT_EQ(spf_with_terms("v=spf1  mx   ~ALL", {"ip6:2001:db8::1"}),
            "v=spf1 mx ip6:2001:db8::1 ~ALL");
  EXPECT_EQ(spf_with_terms("v=spf1 a", {"ip4:192.0.2.1"}), "v=spf1 a ip4:192.0.2.1");
  EXPECT_EQ(spf_with_terms("v=spf1 ip4:192.0.2.1 -all", {"IP4:192.0.2.1", "ip4:192.0.2.2"}),
            "v=spf1 ip4:192.0.2.1 ip4:192.0.2.2 -all");
  EXPECT_EQ(spf_with_terms("", {"ip4:192.0.2.1"}), "ip4:192.0.2.1");
  EXPECT_EQ(spf_term("192.0.2.1"), "ip4:192.0.2.1");
  EXPECT_EQ(spf_term("2001:DB8::1"), "ip6:2001:db8::1");
  EXPECT_EQ(spf_term("mx.example.test"), "");
}

TEST(DnscheckRecordEditTest, DmarcRuaIsReplacedOrAdded) {
  EXPECT_EQ(dmarc_with_rua("v=DMARC1; p=reject", "mailto:d@example.test"),
            "v=DMARC1; p=reject; rua=mailto:d@example.test");
  EXPECT_EQ(dmarc_with_rua("v=DMARC1;p=none;RUA=http://x;;rua=y;", "mailto:d@example.test"),
            "v=DMARC1; p=none; rua=mailto:d@example.test");
}

TEST(DnscheckDmarcTest, Verdicts) {
  DmarcFacts f;
  f.at_domain = txt({"v=DMARC1; p=reject; rua=mailto:agg@example.test"});
  Check c = judge_dmarc("example.test", f, "postmaster@example.test");
  EXPECT_EQ(c.status(), Severity::kOk);
  EXPECT_EQ(c.name, "_dmarc.example.test");

  f.at_domain = txt({"v=DMARC1; p=quarantine"});
  c = judge_dmarc("example.test", f, "postmaster@example.test");
  EXPECT_EQ(codes(c), std::vector<std::string>{"no-rua"});
  ASSERT_EQ(c.fixes.size(), 1u);
  EXPECT_EQ(c.fixes[0].name, "_dmarc.example.test");
  EXPECT_EQ(c.fixes[0].value, "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test");

  f.at_domain = {Status::kNxDomain, {}, 0};
  c = judge_dmarc("example.test", f, "postmaster@example.test");
  EXPECT_EQ(codes(c), std::vector<std::string>{"missing"});
  EXPECT_EQ(c.fixes.at(0).value, "v=DMARC1; p=none; rua=mailto:postmaster@example.test");

  f.at_domain = txt({"v=DMARC1; p=always"});
  c = judge_dmarc("example.test", f, "postmaster@example.test");
  EXPECT_EQ(codes(c), std::vector<std::string>{"bad-syntax"});

  f.at_domain = txt({"v=DMARC1; p=none; rua=mailto:a@example.test", "v=DMARC1; p=reject"});
  EXPECT_EQ(codes(judge_dmarc("example.test", f, "x@example.test")),
            std::vector<std::string>{"multiple-records"});

  f.at_domain = txt({"v=DMARC1; p=none; pct=200; rua=mailto:a@example.test"});
  c = judge_dmarc("example.test", f, "x@example.test");
  EXPECT_EQ(codes(c), std::vector<std::string>{"ignored-tags"});
  EXPECT_EQ(c.status(), Severity::kWarning);

  f.at_domain = {Status::kTimeout, {}, 0};
  EXPECT_EQ(judge_dmarc("example.test", f, "x@example.test").status(), Severity::kError);
}

TEST(DnscheckDmarcTest, SubdomainInheritsTheOrganizationalRecord) {
  DmarcFacts f;
  f.at_domain = {Status::kNxDomain, {}, 0};
  f.org_domain = "example.test";
  f.at_org = txt({"v=DMARC1; p=reject; sp=quarantine; rua=mailto:agg@example.test"});
  Check c = judge_dmarc("mail.example.test", f, "postmaster@mail.example.test");
  EXPECT_EQ(c.status(), Severity::kOk);
  EXPECT_EQ(c.name, "_dmarc.example.test");
  ASSERT_EQ(c.notes.size(), 1u);
  f.at_org = {Status::kNxDomain, {}, 0};
  c = judge_dmarc("mail.example.test", f, "postmaster@mail.example.test");
  EXPECT_EQ(codes(c), std::vector<std::string>{"missing"});
  EXPECT_EQ(c.fixes.at(0).name, "_dmarc.mail.example.test");
}

MxFacts mx_facts(std::vector<common::dns::MxRecord> records, std::vector<MxTarget> targets) {
  MxFacts f;
  f.mx.status = records.empty() ? Status::kNoData : Status::kOk;
  f.mx.records = std::move(records);
  f.targets = std::move(targets);
  return f;
}

TEST(DnscheckMxTest, Verdicts) {
  auto ok =
      mx_facts({{10, "mx.example.test"}}, {{"mx.example.test", Status::kOk, Status::kNoData}});
  EXPECT_EQ(judge_mx("example.test", ok, {}).status(), Severity::kOk);
  EXPECT_EQ(judge_mx("example.test", ok, {"MX.example.test."}).status(), Severity::kOk);
  Check c = judge_mx("example.test", ok, {"mx2.example.test"});
  EXPECT_EQ(codes(c), std::vector<std::string>{"mx-absent"});
  ASSERT_EQ(c.fixes.size(), 1u);
  EXPECT_EQ(c.fixes[0].zone, "example.test.\tIN\tMX\t10 mx2.example.test.");

  c = judge_mx("example.test", mx_facts({}, {}), {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"missing"});
  EXPECT_EQ(c.status(), Severity::kWarning);
  EXPECT_EQ(judge_mx("example.test", mx_facts({}, {}), {"mx.example.test"}).status(),
            Severity::kMismatch);

  c = judge_mx("example.test", mx_facts({{0, "."}}, {}), {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"null-mx"});

  c = judge_mx("example.test",
               mx_facts({{10, "mx.example.test"}},
                        {{"mx.example.test", Status::kNxDomain, Status::kNxDomain}}),
               {});
  EXPECT_EQ(codes(c), std::vector<std::string>{"no-address"});
  c = judge_mx("example.test",
               mx_facts({{10, "mx.example.test"}},
                        {{"mx.example.test", Status::kTimeout, Status::kTimeout}}),
               {});
  EXPECT_EQ(c.status(), Severity::kError);

  MxFacts nx;
  nx.mx.status = Status::kNxDomain;
  EXPECT_EQ(judge_mx("example.test", nx, {}).status(), Severity::kMismatch);
}

TEST(DnscheckDkimTest, KeyStatusesBecomeProblemsWithTheRecordToPublish) {
  auto key = dkim::generate_key(dkim::KeyType::kEd25519, 0);
  dkim::KeyCheck check;
  check.name = "s1._domainkey.example.test";
  check.status = dkim::KeyStatus::kWrongKey;
  check.message = check.name + ": p= does not match the private key";
  check.published = {"v=DKIM1; k=ed25519; p=AAAA"};
  Check c = judge_dkim("example.test", "s1", "/k/s1.private", key, check);
  EXPECT_EQ(codes(c), std::vector<std::string>{"wrong-key"});
  EXPECT_EQ(c.selector, "s1");
  ASSERT_EQ(c.fixes.size(), 1u);
  EXPECT_EQ(c.fixes[0].name, "s1._domainkey.example.test");
  EXPECT_EQ(c.fixes[0].value, key.public_record);
  EXPECT_NE(c.expected.find("/k/s1.private"), std::string::npos);

  check.status = dkim::KeyStatus::kDnsError;
  c = judge_dkim("example.test", "s1", "/k/s1.private", key, check);
  EXPECT_EQ(c.status(), Severity::kError);
  EXPECT_TRUE(c.fixes.empty());

  check.status = dkim::KeyStatus::kMatch;
  check.warnings = {"t=y (testing)"};
  c = judge_dkim("example.test", "s1", "/k/s1.private", key, check);
  EXPECT_EQ(codes(c), std::vector<std::string>{"testing"});
  EXPECT_EQ(c.status(), Severity::kWarning);
}

}  // namespace
}  // namespace mxguard::milter::dnscheck
