// Aggregate reports end to end on a real Redis and DNS server: data recorded by the store is
// turned into a report that validates against RFC 7489's XSD (xmllint), is sent through a
// sendmail(1) stand-in as the spec's MIME message, only to destinations that are ours or that
// authorised us (§7.1 _report._dmarc records); a failed send keeps everything and a re-run
// sends it; the mxguard-dmarc-report binary writes files with --dry-run and keeps the data,
// and its --metrics-file says what failed.
#include "milters/dmarc/report.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <zlib.h>

#include <ctime>
#include <filesystem>
#include <regex>
#include <sstream>

#include "common/dns/resolver.h"
#include "common/redis/pool.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::milter::dmarc {
namespace {

using testing::TempDir;

const std::string kPsl = "/usr/share/publicsuffix/public_suffix_list.dafsa";
const std::string kXsd = std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dmarc/rfc7489-rua.xsd";

const char* kZone = R"($ORIGIN test.
$TTL 60
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
pol.test._report._dmarc.reports IN TXT "v=DMARC1"
!timeout pol.test._report._dmarc.slow.test.
)";

std::string gunzip(const std::string& gz) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  std::string out(4 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return "";
  out.resize(zs.total_out);
  return out;
}

// The attachment of a report message, decoded and gunzipped.
std::string attachment_xml(const std::string& message) {
  auto start = message.find("Content-Disposition: attachment");
  if (start == std::string::npos) return "";
  start = message.find("\n\n", start);
  if (start == std::string::npos) return "";
  auto end = message.find("\n--", start + 2);
  std::string b64;
  for (char c : message.substr(start + 2, end - start - 2)) {
    if (c != '\n' && c != '\r') b64 += c;
  }
  std::string raw(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) return "";
  std::size_t pad = 0;
  while (pad < b64.size() && b64[b64.size() - 1 - pad] == '=') ++pad;
  raw.resize(static_cast<std::size_t>(n) - pad);
  return gunzip(raw);
}

// xmllint against the RFC's schema (without its targetNamespace: see the XSD's comment).
int validate(const TempDir& dir, const std::string& xml, std::string* out) {
  std::string xsd = testing::read_file(kXsd);
  xsd = std::regex_replace(xsd, std::regex("\\s+targetNamespace=\"[^\"]*\""), "");
  testing::write_file(dir / "schema.xsd", xsd);
  testing::write_file(dir / "report.xml", xml);
  return testing::run_command({"xmllint", "--noout", "--schema", (dir / "schema.xsd").string(),
                               (dir / "report.xml").string()},
                              out);
}

class DmarcReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    common::redis::ClientOptions ro;
    ro.url = redis_.url();
    pool_ = std::make_unique<common::redis::Pool>(ro);
    store_ = std::make_unique<AggregateStore>(*pool_, std::chrono::hours(24),
                                              std::chrono::hours(24 * 7));
    common::dns::ResolverOptions dopt;
    dopt.servers = {dns_.server_spec()};
    dopt.timeout = std::chrono::milliseconds(500);
    resolver_ = std::make_unique<common::dns::Resolver>(dopt);
    std::filesystem::create_directories(dir_ / "out");
    testing::write_file(dir_ / "sendmail",
                        "#!/bin/sh\n"
                        "# sendmail(1) stand-in: -i -f FROM -- TO\n"
                        "[ -f '" +
                            (dir_ / "fail").string() +
                            "' ] && exit 75\n"
                            "cat > '" +
                            (dir_ / "out").string() + "/'\"$5\"\n");
    ::chmod((dir_ / "sendmail").c_str(), 0755);
  }

  Lookups lookups() {
    Lookups l;
    l.txt = [this](const std::string& name) {
      TxtLookup t;
      auto a = resolver_->lookup_txt(name);
      if (a.status == common::dns::Status::kOk) {
        t.status = TxtLookup::Status::kOk;
        t.records = a.records;
      } else if (a.status == common::dns::Status::kNxDomain ||
                 a.status == common::dns::Status::kNoData) {
        t.status = TxtLookup::Status::kNoRecord;
      } else {
        t.status = TxtLookup::Status::kTempError;
      }
      return t;
    };
    return l;
  }

  void record_some(std::int64_t when, const std::string& rua) {
    Published p;
    p.domain = "pol.test";
    p.p = "reject";
    p.sp = "reject";
    p.rua = rua;
    Row pass;
    pass.source_ip = "198.51.100.7";
    pass.disposition = "none";
    pass.dkim_eval = "pass";
    pass.header_from = "pol.test";
    pass.envelope_from = "pol.test";
    pass.dkim = {{"pol.test", "pass", "s1"}};
    pass.spf = {"pol.test", "pass", ""};
    Row fail = pass;
    fail.source_ip = "203.0.113.9";
    fail.disposition = "reject";
    fail.dkim_eval = "fail";
    fail.dkim = {};
    fail.spf = {"evil.example", "fail", ""};
    for (int i = 0; i < 3; ++i) store_->record(p, pass, when);
    store_->record(p, fail, when);
  }

  std::vector<std::string> sent_to() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "out")) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir dir_;
  testing::RedisServer redis_;
  testing::DnsServer dns_{kZone};
  std::unique_ptr<common::redis::Pool> pool_;
  std::unique_ptr<AggregateStore> store_;
  std::unique_ptr<common::dns::Resolver> resolver_;
  OrgDomains org_{kPsl};
  ReporterInfo info_{"mxguard test", "noreply-dmarc@receiver.test", "", "receiver.test"};
};

// A period is reported only report-delay after its end: late messages (and MX hosts whose
// clocks are a little behind) still land in it before its data is read and removed.
TEST_F(DmarcReportTest, APeriodIsReportedOnlyAfterTheDelay) {
  std::int64_t now = std::time(nullptr);
  std::int64_t end = now - now % 86400;  // yesterday's period ends at today's UTC midnight
  record_some(end - 3600, "mailto:agg@pol.test");
  ReporterInfo info = info_;
  info.delay = now - end + 60;
  Reporter reporter(info, *store_, org_, lookups(), sendmail_sender((dir_ / "sendmail").string()));
  std::ostringstream log;
  EXPECT_EQ(reporter.run(now, "", log).periods, 0) << log.str();
  EXPECT_TRUE(sent_to().empty());
  EXPECT_EQ(store_->pending().size(), 1u);
  ReportRun r = reporter.run(end + info.delay, "", log);
  EXPECT_EQ(r.sent, 1) << log.str();
  EXPECT_EQ(sent_to(), (std::vector<std::string>{"agg@pol.test"})) << log.str();
  EXPECT_TRUE(store_->pending().empty());
}

TEST_F(DmarcReportTest, SendsValidReportsOnlyToPermittedDestinationsAndKeepsDataOnFailure) {
  std::int64_t now = std::time(nullptr);
  record_some(now - 2 * 86400,
              "mailto:agg@pol.test,mailto:ext@reports.test!10m,mailto:x@noauth.test");
  record_some(now, "mailto:agg@pol.test");  // the current period: not reported yet
  Reporter reporter(info_, *store_, org_, lookups(), sendmail_sender((dir_ / "sendmail").string()));

  testing::write_file(dir_ / "fail", "");
  std::ostringstream log;
  ReportRun r = reporter.run(now, "", log);
  EXPECT_EQ(r.periods, 1) << log.str();
  EXPECT_EQ(r.failed, 1) << log.str();
  EXPECT_EQ(store_->pending().size(), 2u) << "a failed send keeps the data";
  EXPECT_TRUE(sent_to().empty());

  std::filesystem::remove(dir_ / "fail");
  r = reporter.run(now, "", log);
  EXPECT_EQ(r.sent, 1) << log.str();
  EXPECT_EQ(r.failed, 0) << log.str();
  EXPECT_EQ(sent_to(), (std::vector<std::string>{"agg@pol.test", "ext@reports.test"})) << log.str();
  EXPECT_NE(log.str().find("x@noauth.test did not authorise"), std::string::npos) << log.str();
  ASSERT_EQ(store_->pending().size(), 1u) << "sent data removed, current period kept";
  EXPECT_EQ(reporter.run(now, "", log).periods, 0);

  std::string mail = testing::read_file(dir_ / "out" / "agg@pol.test");
  EXPECT_NE(mail.find("Subject: Report Domain: pol.test Submitter: receiver.test Report-ID: <"),
            std::string::npos)
      << mail;
  std::regex name("filename=\"receiver\\.test!pol\\.test!\\d+!\\d+!\\d+\\.xml\\.gz\"");
  EXPECT_TRUE(std::regex_search(mail, name)) << mail;
  std::string xml = attachment_xml(mail);
  ASSERT_FALSE(xml.empty()) << mail;
  EXPECT_NE(xml.find("<count>3</count>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<source_ip>203.0.113.9</source_ip>"), std::string::npos) << xml;
  std::string out;
  EXPECT_EQ(validate(dir_, xml, &out), 0) << out << "\n" << xml;
}

// Issue 15, finding 3: a stored rua that aims at a third party through a comment, or carries a
// twice-encoded newline, sends nothing (before: the first reached victim@third.example without
// any _report._dmarc check, the second put a header line of the sender's choice into To:).
// Stored strings are re-parsed with the same strict parser, so old Redis data is safe too.
TEST_F(DmarcReportTest, RedirectedOrInjectedDestinationsGetNothing) {
  std::int64_t now = std::time(nullptr);
  record_some(now - 2 * 86400,
              "mailto:victim@third.test(@pol.test,mailto:agg@pol.test%0ABcc:x@evil.test,"
              "mailto:agg@pol.test");
  Reporter reporter(info_, *store_, org_, lookups(), sendmail_sender((dir_ / "sendmail").string()));
  std::ostringstream log;
  ReportRun r = reporter.run(now, "", log);
  EXPECT_EQ(r.sent, 1) << log.str();
  EXPECT_EQ(sent_to(), (std::vector<std::string>{"agg@pol.test"})) << log.str();
  std::string mail = testing::read_file(dir_ / "out" / "agg@pol.test");
  EXPECT_NE(mail.find("\nTo: <agg@pol.test>\n"), std::string::npos) << mail;
  EXPECT_EQ(mail.find("Bcc"), std::string::npos) << mail;
}

TEST_F(DmarcReportTest, UnverifiableDestinationKeepsTheData) {
  std::int64_t now = std::time(nullptr);
  record_some(now - 2 * 86400, "mailto:a@slow.test");
  Reporter reporter(info_, *store_, org_, lookups(), sendmail_sender((dir_ / "sendmail").string()));
  std::ostringstream log;
  ReportRun r = reporter.run(now, "", log);
  EXPECT_EQ(r.failed, 1) << log.str();
  EXPECT_EQ(store_->pending().size(), 1u);
}

TEST_F(DmarcReportTest, SendmailThatExitsWithoutReadingIsAFailureNotACrash) {
  // Without care the write into the closed pipe raises SIGPIPE and kills the reporter.
  testing::write_file(dir_ / "refuse", "#!/bin/sh\nexec 0<&-\nexit 75\n");
  ::chmod((dir_ / "refuse").c_str(), 0755);
  std::string error;
  bool ok = sendmail_sender((dir_ / "refuse").string())("a@b.test", "c@d.test",
                                                        std::string(1 << 20, 'x'), error);
  EXPECT_FALSE(ok);
  EXPECT_NE(error.find("exit 75"), std::string::npos) << error;
}

TEST_F(DmarcReportTest, SchemaRejectsABrokenReport) {
  // The validation above means something: a report missing its required parts fails.
  std::string out;
  EXPECT_NE(validate(dir_, "<feedback><version>1.0</version></feedback>", &out), 0) << out;
}

TEST_F(DmarcReportTest, BinaryDryRunWritesFilesAndKeepsData) {
  std::int64_t now = std::time(nullptr);
  record_some(now - 2 * 86400, "mailto:agg@pol.test");
  testing::write_file(dir_ / "dmarc.conf", "redis-url = " + redis_.url() + "\n" +
                                               "dns-servers = " + dns_.server_spec() + "\n" +
                                               "report-email = noreply@receiver.test\n"
                                               "report-org-name = Receiver Test\n");
  std::filesystem::create_directories(dir_ / "dry");
  std::string out;
  int rc = testing::run_command(
      {std::string(MXGUARD_BINARY_DIR) + "/milters/dmarc/mxguard-dmarc-report", "-c",
       (dir_ / "dmarc.conf").string(), "--dry-run", (dir_ / "dry").string()},
      &out);
  EXPECT_EQ(rc, 0) << out;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "dry")) {
    files.push_back(e.path().filename().string());
  }
  ASSERT_EQ(files.size(), 1u) << out;
  EXPECT_TRUE(files[0].starts_with("receiver.test!pol.test!")) << files[0];
  std::string xml = gunzip(testing::read_file(dir_ / "dry" / files[0]));
  EXPECT_NE(xml.find("<org_name>Receiver Test</org_name>"), std::string::npos) << xml;
  EXPECT_EQ(validate(dir_, xml, &out), 0) << out;
  EXPECT_EQ(store_->pending().size(), 1u) << "dry run keeps the data";
  // Redis down: a clear error and exit 1.
  redis_.stop();
  rc =
      testing::run_command({std::string(MXGUARD_BINARY_DIR) + "/milters/dmarc/mxguard-dmarc-report",
                            "-c", (dir_ / "dmarc.conf").string()},
                           &out);
  EXPECT_EQ(rc, 1) << out;
}

// Issue 20: --metrics-file writes each run's outcome for node_exporter's textfile collector,
// so a failed send can raise an alert: exit 75 and outcome="failed" 1, then, once sendmail
// works again, exit 0 and outcome="sent" 1. The file is replaced whole (no .tmp left).
TEST_F(DmarcReportTest, BinaryMetricsFileSaysWhatFailed) {
  std::int64_t now = std::time(nullptr);
  record_some(now - 2 * 86400, "mailto:agg@pol.test");
  testing::write_file(dir_ / "dmarc.conf",
                      "redis-url = " + redis_.url() + "\n" + "dns-servers = " + dns_.server_spec() +
                          "\n" + "report-email = noreply@receiver.test\n" +
                          "report-sendmail = " + (dir_ / "sendmail").string() + "\n");
  const std::string prom = (dir_ / "report.prom").string();
  auto run = [&](std::string* out) {
    return testing::run_command(
        {std::string(MXGUARD_BINARY_DIR) + "/milters/dmarc/mxguard-dmarc-report", "-c",
         (dir_ / "dmarc.conf").string(), "--metrics-file", prom},
        out);
  };
  testing::write_file(dir_ / "fail", "");
  std::string out;
  EXPECT_EQ(run(&out), 75) << out;
  std::string text = testing::read_file(prom);
  EXPECT_NE(text.find("mxguard_dmarc_report_last_run_exit_code 75\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxguard_dmarc_report_last_run_reports{outcome=\"failed\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nmxguard_dmarc_report_last_run_timestamp_seconds "), std::string::npos)
      << text;
  EXPECT_EQ(text.find("mxguard_redis"), std::string::npos) << "only the run's own metrics";
  std::filesystem::remove(dir_ / "fail");
  EXPECT_EQ(run(&out), 0) << out;
  text = testing::read_file(prom);
  EXPECT_NE(text.find("mxguard_dmarc_report_last_run_exit_code 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxguard_dmarc_report_last_run_reports{outcome=\"sent\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("mxguard_dmarc_report_last_run_reports{outcome=\"failed\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_FALSE(std::filesystem::exists(prom + ".tmp"));
}

}  // namespace
}  // namespace mxguard::milter::dmarc
