// mxguard-dmarc-report's work: turns the aggregate data in Redis into RFC 7489 §7.2 aggregate
// reports (Appendix C XML, gzip, the spec's file name and MIME message), checks external
// destinations (§7.1: <domain>._report._dmarc.<destination> must publish v=DMARC1), and hands
// each report to sendmail(1). A period's data is removed only after every permitted
// destination took the report, so a failed send loses nothing and a re-run is safe.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "milters/dmarc/aggregate.h"
#include "milters/dmarc/evaluate.h"
#include "milters/dmarc/orgdomain.h"

namespace mxguard::milter::dmarc {

struct ReporterInfo {
  std::string org_name;
  std::string email;
  std::string extra_contact;
  std::string receiver_domain;  // in file names and the Subject
  std::int64_t delay = 0;       // seconds after a period's end before it is reported
};

std::string report_id(const ReporterInfo& info, const Period& p);
std::string report_xml(const ReporterInfo& info, const PeriodData& data);
// receiver "!" policy-domain "!" begin "!" end "!" id ".xml.gz" (§7.2.1.1)
std::string report_filename(const ReporterInfo& info, const Period& p);
std::string gzip(const std::string& data);
// The §7.2.1.1 message: Subject "Report Domain: … Submitter: … Report-ID: <…>", a text part
// and the gzip as an application/gzip attachment (base64).
std::string report_message(const ReporterInfo& info, const Period& p, const std::string& to,
                           const std::string& gz, std::int64_t now);

// Sends one message to one recipient: true when the program took it (exit 0).
using Sender = std::function<bool(const std::string& from, const std::string& to,
                                  const std::string& message, std::string& error)>;
Sender sendmail_sender(const std::string& program);

struct ReportRun {
  int periods = 0, sent = 0, failed = 0, skipped = 0, written = 0;
};

class Reporter {
 public:
  Reporter(ReporterInfo info, AggregateStore& store, const OrgDomains& org, Lookups lookups,
           Sender sender);
  // Reports every period that ended before `now`. With dry_run_dir set, writes each report
  // file there instead of sending and keeps the data. Progress and problems go to `log`.
  ReportRun run(std::int64_t now, const std::string& dry_run_dir, std::ostream& log);
  // §7.1: may a report for `domain` go to `address`? kRetry: the DNS check failed temporarily.
  enum class Destination { kAllowed, kDenied, kRetry };
  Destination destination_allowed(const std::string& domain, const ReportUri& uri);

 private:
  ReporterInfo info_;
  AggregateStore& store_;
  const OrgDomains& org_;
  Lookups lookups_;
  Sender sender_;
};

}  // namespace mxguard::milter::dmarc
