// Organizational domains (the PSL's own test vectors through the system list), alignment
// (OpenDMARC's table and the full strict/relaxed × DKIM/SPF matrix) and DMARC evaluation with
// injected lookups: discovery at the From and organizational domain, sp=, np=, pct= sampling,
// several or broken records, DNS failures.
#include "milters/dmarc/evaluate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/mail/from.h"

namespace mxguard::milter::dmarc {

using common::mail::normalize_domain;
namespace {

const std::string kPsl = "/usr/share/publicsuffix/public_suffix_list.dafsa";

TEST(DmarcOrgDomain, PublicSuffixListTestVectors) {
  OrgDomains org(kPsl);
  std::ifstream in(std::string(MXGUARD_SOURCE_DIR) + "/tests/data/conformance/psl/tests.txt");
  ASSERT_TRUE(in);
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line.starts_with("//")) continue;
    std::istringstream f(line);
    std::string input, expected;
    f >> input >> expected;
    if (input == "null") continue;
    std::string lower_input;
    for (char c : input)
      lower_input += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower_input.starts_with(".")) {
      // A leading dot is no domain name; we normalise it away before asking the list.
      continue;
    }
    std::string want = expected == "null" ? normalize_domain(input) : expected;
    EXPECT_EQ(org.organizational(input), want) << input;
    ++checked;
  }
  EXPECT_GE(checked, 60);
}

TEST(DmarcOrgDomain, Basics) {
  OrgDomains org(kPsl);
  EXPECT_EQ(org.organizational("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(org.organizational("co.uk"), "co.uk");
  EXPECT_EQ(org.organizational("a.b.c.bcx.com"), "bcx.com");
  EXPECT_EQ(org.organizational("A.Example.COM."), "example.com");
  EXPECT_THROW(OrgDomains("/nonexistent/psl.dafsa"), std::runtime_error);
}

TEST(DmarcAlignment, OpenDmarcTable) {
  OrgDomains org(kPsl);
  std::ifstream in(std::string(MXGUARD_SOURCE_DIR) +
                   "/tests/data/conformance/dmarc/opendmarc-alignment.tsv");
  ASSERT_TRUE(in);
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    std::string n, a, b, mode, expected;
    std::getline(f, n, '\t');
    std::getline(f, a, '\t');
    std::getline(f, b, '\t');
    std::getline(f, mode, '\t');
    std::getline(f, expected, '\t');
    bool strict = mode == "DMARC_RECORD_A_STRICT";
    EXPECT_EQ(org.aligned(a, b, strict), expected == "0") << n << ": " << a << " " << b;
    ++rows;
  }
  EXPECT_EQ(rows, 10);
}

// A zone in memory: name → TXT records; "!temp" marks a DNS failure; "!nx" a name that does
// not exist (for np=).
struct Zone {
  std::map<std::string, std::vector<std::string>> txt;
  std::set<std::string> temp, existing;
  int queries = 0;
  Lookups lookups() {
    return Lookups{[this](const std::string& name) {
                     ++queries;
                     TxtLookup t;
                     if (temp.count(name))
                       t.status = TxtLookup::Status::kTempError;
                     else if (auto it = txt.find(name); it != txt.end()) {
                       t.status = TxtLookup::Status::kOk;
                       t.records = it->second;
                     }
                     return t;
                   },
                   [this](const std::string& name) { return !existing.count(name); }};
  }
};

class DmarcEvaluate : public ::testing::Test {
 protected:
  OrgDomains org_{kPsl};
  Zone zone_;
  int random_ = 0;
  Evaluator ev() {
    return Evaluator(org_, zone_.lookups(), [this] { return random_; });
  }
  Evaluation eval(const std::string& from, std::vector<AuthResult> dkim, AuthResult spf) {
    return ev().evaluate(from, dkim, spf);
  }
};

TEST_F(DmarcEvaluate, AlignmentMatrix) {
  // (adkim, aspf) × (auth domain = from, subdomain, other org) × (DKIM, SPF).
  struct Case {
    const char* tags;
    const char* auth;
    bool dkim_aligned, spf_aligned;
  };
  const Case cases[] = {
      {"adkim=r; aspf=r", "example.com", true, true},
      {"adkim=r; aspf=r", "mail.example.com", true, true},
      {"adkim=r; aspf=r", "example.net", false, false},
      {"adkim=s; aspf=s", "example.com", true, true},
      {"adkim=s; aspf=s", "mail.example.com", false, false},
      {"adkim=s; aspf=r", "mail.example.com", false, true},
      {"adkim=r; aspf=s", "mail.example.com", true, false},
      {"adkim=s; aspf=s", "example.net", false, false},
  };
  for (const auto& c : cases) {
    zone_.txt["_dmarc.example.com"] = {std::string("v=DMARC1; p=reject; ") + c.tags};
    Evaluation d = eval("example.com", {{c.auth, "pass", "s1"}}, {"", "none", ""});
    EXPECT_EQ(d.dkim_aligned, c.dkim_aligned) << c.tags << " dkim " << c.auth;
    EXPECT_EQ(d.result, c.dkim_aligned ? "pass" : "fail");
    Evaluation s = eval("example.com", {}, {c.auth, "pass", ""});
    EXPECT_EQ(s.spf_aligned, c.spf_aligned) << c.tags << " spf " << c.auth;
    EXPECT_EQ(s.result, c.spf_aligned ? "pass" : "fail");
    // Aligned but not passing never counts.
    Evaluation f = eval("example.com", {{c.auth, "fail", "s1"}}, {c.auth, "softfail", ""});
    EXPECT_FALSE(f.dkim_aligned || f.spf_aligned);
    EXPECT_EQ(f.result, "fail");
    EXPECT_EQ(f.disposition, Policy::kReject);
  }
}

TEST_F(DmarcEvaluate, DiscoveryFallsBackToOrganizationalDomain) {
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=reject; sp=quarantine"};
  zone_.existing = {"mail.example.com"};
  Evaluation e = eval("mail.example.com", {}, {});
  EXPECT_EQ(e.policy_domain, "example.com");
  EXPECT_EQ(e.policy, Policy::kQuarantine);
  EXPECT_EQ(e.result, "fail");
  // A record at the subdomain itself wins.
  zone_.txt["_dmarc.mail.example.com"] = {"v=DMARC1; p=none"};
  e = eval("mail.example.com", {}, {});
  EXPECT_EQ(e.policy_domain, "mail.example.com");
  EXPECT_EQ(e.policy, Policy::kNone);
}

TEST_F(DmarcEvaluate, NpAppliesToNonExistentSubdomains) {
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=none; sp=quarantine; np=reject"};
  zone_.existing = {"real.example.com"};
  EXPECT_EQ(eval("real.example.com", {}, {}).policy, Policy::kQuarantine);
  EXPECT_EQ(eval("ghost.example.com", {}, {}).policy, Policy::kReject);
  EXPECT_EQ(eval("example.com", {}, {}).policy, Policy::kNone);
}

TEST_F(DmarcEvaluate, PctSampling) {
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=reject; pct=30"};
  random_ = 29;
  Evaluation e = eval("example.com", {}, {});
  EXPECT_EQ(e.disposition, Policy::kReject);
  EXPECT_FALSE(e.sampled_out);
  random_ = 30;
  e = eval("example.com", {}, {});
  EXPECT_EQ(e.disposition, Policy::kQuarantine);
  EXPECT_TRUE(e.sampled_out);
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=quarantine; pct=0"};
  e = eval("example.com", {}, {});
  EXPECT_EQ(e.disposition, Policy::kNone);
}

TEST_F(DmarcEvaluate, NoneTemperrorPermerror) {
  EXPECT_EQ(eval("example.com", {}, {}).result, "none");
  zone_.txt["_dmarc.example.com"] = {"v=spf1 -all", "something else"};
  EXPECT_EQ(eval("example.com", {}, {}).result, "none");
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=reject", "v=DMARC1; p=none"};
  EXPECT_EQ(eval("example.com", {}, {}).result, "permerror");
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=garbage"};
  Evaluation e = eval("example.com", {}, {});
  EXPECT_EQ(e.result, "permerror");
  EXPECT_EQ(e.disposition, Policy::kNone);
  zone_.temp = {"_dmarc.example.com"};
  EXPECT_EQ(eval("example.com", {}, {}).result, "temperror");
  zone_.temp = {"_dmarc.example.com"};
  zone_.txt.clear();
  zone_.temp = {"_dmarc.example.com"};
  EXPECT_EQ(eval("sub.example.com", {}, {}).result, "temperror");
}

TEST_F(DmarcEvaluate, PassNeedsNoDisposition) {
  zone_.txt["_dmarc.example.com"] = {"v=DMARC1; p=reject"};
  Evaluation e = eval("example.com", {{"other.example", "pass", "a"}, {"example.com", "pass", "b"}},
                      {"evil.example", "pass", ""});
  EXPECT_EQ(e.result, "pass");
  EXPECT_TRUE(e.dkim_aligned);
  EXPECT_FALSE(e.spf_aligned);
  EXPECT_EQ(e.disposition, Policy::kNone);
}

}  // namespace
}  // namespace mxguard::milter::dmarc
