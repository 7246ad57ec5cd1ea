// mxguard-dnscheck's report: the exit status from the worst check, the JSON document's shape
// (what scripts rely on, as docs/mxguard-dnscheck.md shows it) and the text form's parts.
#include "milters/dnscheck/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace mxguard::milter::dnscheck {
namespace {

Report sample() {
  Report r;
  Check spf;
  spf.type = RecordType::kSpf;
  spf.domain = "example.test";
  spf.name = "example.test";
  spf.published = {"v=spf1 mx -all"};
  spf.expected = "one v=spf1 record";
  r.checks.push_back(spf);
  Check dkim;
  dkim.type = RecordType::kDkim;
  dkim.domain = "example.test";
  dkim.selector = "s1";
  dkim.name = "s1._domainkey.example.test";
  dkim.expected = "v=DKIM1; k=ed25519; p=AAAA";
  dkim.add("missing", Severity::kMismatch, "no TXT record (nxdomain)");
  dkim.fixes.push_back(
      {"s1._domainkey.example.test", "TXT", "v=DKIM1; k=ed25519; p=AAAA",
       "s1._domainkey.example.test.\tIN\tTXT\t( \"v=DKIM1; k=ed25519; p=AAAA\" )"});
  r.checks.push_back(dkim);
  Check mx;
  mx.type = RecordType::kMx;
  mx.domain = "example.test";
  mx.name = "example.test";
  mx.add("missing", Severity::kWarning, "no MX record");
  r.checks.push_back(mx);
  r.notes.push_back("a note");
  return r;
}

TEST(DnscheckReportTest, ExitStatusFollowsTheWorstCheck) {
  Report r = sample();
  EXPECT_EQ(exit_code(r), 1);
  r.checks.erase(r.checks.begin() + 1);  // only ok and a warning left
  EXPECT_EQ(exit_code(r), 0);
  r.checks[0].add("dns-error", Severity::kError, "timeout");
  EXPECT_EQ(exit_code(r), 1);
}

TEST(DnscheckReportTest, JsonShape) {
  std::ostringstream out;
  print_json(sample(), out);
  auto doc = nlohmann::json::parse(out.str());
  EXPECT_EQ(doc["ok"], false);
  EXPECT_EQ(doc["summary"],
            (nlohmann::json{{"ok", 1}, {"warning", 1}, {"mismatch", 1}, {"error", 0}}));
  ASSERT_EQ(doc["checks"].size(), 3u);
  const auto& d = doc["checks"][1];
  EXPECT_EQ(d["domain"], "example.test");
  EXPECT_EQ(d["type"], "dkim");
  EXPECT_EQ(d["selector"], "s1");
  EXPECT_EQ(d["name"], "s1._domainkey.example.test");
  EXPECT_EQ(d["status"], "mismatch");
  EXPECT_EQ(d["published"], nlohmann::json::array());
  EXPECT_EQ(d["problems"][0]["code"], "missing");
  EXPECT_EQ(d["problems"][0]["severity"], "mismatch");
  EXPECT_EQ(d["fixes"][0]["type"], "TXT");
  EXPECT_EQ(d["fixes"][0]["value"], "v=DKIM1; k=ed25519; p=AAAA");
  EXPECT_FALSE(doc["checks"][0].contains("selector"));
  EXPECT_EQ(doc["notes"][0], "a note");
}

TEST(DnscheckReportTest, JsonSurvivesBytesThatAreNotUtf8) {
  Report r = sample();
  r.checks[0].published = {std::string("v=spf1 \xff\xfe -all")};
  std::ostringstream out;
  print_json(r, out);
  EXPECT_TRUE(nlohmann::json::parse(out.str()).is_object());
}

TEST(DnscheckReportTest, TextShowsStatusPublishedExpectedAndFix) {
  Report r = sample();
  r.checks[0].published = {std::string("v=spf1 \x01 -all")};
  std::ostringstream out;
  print_text(r, out);
  std::string text = out.str();
  EXPECT_EQ(text.rfind("example.test\n  SPF    example.test: ok\n", 0), 0u) << text;
  EXPECT_NE(text.find("\\x01"), std::string::npos) << text;  // control characters escaped
  EXPECT_NE(text.find("  DKIM   s1._domainkey.example.test: MISMATCH\n"
                      "    mismatch (missing): no TXT record (nxdomain)\n"
                      "    published: (nothing)\n"
                      "    expected:  v=DKIM1; k=ed25519; p=AAAA\n"
                      "    fix:       s1._domainkey.example.test.\tIN\tTXT\t( \"v=DKIM1; "
                      "k=ed25519; p=AAAA\" )\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("3 records: 1 ok, 1 warning(s), 1 mismatch(es), 0 lookup error(s)"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace mxguard::milter::dnscheck
