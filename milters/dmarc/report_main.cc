// mxguard-dmarc-report: sends the DMARC aggregate reports collected by mxguard-dmarc. Reads
// mxguard-dmarc's config file (same Redis, prefix, interval and DNS), so run it from cron or a
// systemd timer once per --report-interval. Exit 0: all done; 75: some reports could not be
// sent and stay in Redis for the next run; 1: Redis or configuration trouble. With
// --metrics-file the run's outcome is also written for node_exporter's textfile collector (a
// job that exits has no endpoint to scrape), so failed sends can raise an alert.
#include <fcntl.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

#include "common/daemon/daemon.h"
#include "common/dns/resolver.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "common/util/host.h"
#include "milters/dmarc/options.h"
#include "milters/dmarc/report.h"

namespace {

struct ReportOptions {
  mxguard::milter::dmarc::Options dmarc;
  std::string dry_run;  // a directory: write the report files there instead of sending
  std::string metrics_file;

  void bind(mxguard::common::config::Binder& b) {
    dmarc.bind(b);
    b.add("dry-run", dry_run, "write report files into this directory instead of sending");
    b.add("metrics-file", metrics_file,
          "write the run's outcome to this file in Prometheus text, for node_exporter's "
          "textfile collector (empty: none)");
  }
  void validate() const { dmarc.validate(); }
};

// The outcome of this run as gauges (one process per run: counters would restart at zero
// anyway). `run` is null when the run failed before sending (exit 1). Only these: the global
// registry's Redis and DNS metrics would sit in the file, stale, until the next run.
void write_metrics(const std::string& path, int exit_code,
                   const mxguard::milter::dmarc::ReportRun* run) {
  if (path.empty()) return;
  mxguard::common::metrics::Registry r;
  r.gauge("mxguard_dmarc_report_last_run_timestamp_seconds",
          "When mxguard-dmarc-report last finished (Unix time)")
      .set(static_cast<double>(std::time(nullptr)));
  r.gauge("mxguard_dmarc_report_last_run_exit_code",
          "Exit status of the last run: 0 done, 75 some reports not sent, 1 Redis or other error")
      .set(exit_code);
  if (run) {
    const std::pair<const char*, int> outcomes[] = {{"sent", run->sent},
                                                    {"failed", run->failed},
                                                    {"skipped", run->skipped},
                                                    {"written", run->written}};
    for (const auto& [outcome, n] : outcomes) {
      r.gauge("mxguard_dmarc_report_last_run_reports",
              "Report deliveries of the last run by outcome (failed ones are retried next run)",
              {{"outcome", outcome}})
          .set(n);
    }
  }
  // Written aside and renamed: the collector reads only *.prom and never sees half a file.
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << r.render();
    if (!out.flush()) {
      std::cerr << "mxguard-dmarc-report: cannot write " << tmp << "\n";
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::cerr << "mxguard-dmarc-report: cannot rename " << tmp << " to " << path << "\n";
    std::remove(tmp.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mxguard::milter::dmarc;
  const mxguard::common::config::ProgramInfo info{
      "mxguard-dmarc-report", "sends DMARC aggregate reports from mxguard-dmarc's Redis data",
      "/etc/mxguard/dmarc.conf", ""};
  ReportOptions opts;
  mxguard::common::config::Request req;
  if (int rc = mxguard::common::daemon::parse_options(info, opts, argc, argv, &req); rc >= 0) {
    return rc;
  }
  mxguard::common::log::init(info.name, mxguard::common::log::Target::kStderr,
                             mxguard::common::log::Level::kError);
  const Options& o = opts.dmarc;
  std::string host = mxguard::common::util::host_name();
  ReporterInfo ri;
  ri.org_name = o.report_org_name.empty() ? host : o.report_org_name;
  ri.email = o.report_email.empty() ? "noreply-dmarc@" + host : o.report_email;
  ri.extra_contact = o.report_extra_contact;
  ri.delay = o.report_delay.seconds().count();
  auto at = ri.email.rfind('@');
  ri.receiver_domain = at == std::string::npos ? host : ri.email.substr(at + 1);
  try {
    mxguard::common::redis::Pool pool(o.redis);
    AggregateStore store(pool, o.report_interval.seconds(), o.report_retention.seconds());
    OrgDomains org(o.public_suffix_list);
    mxguard::common::dns::Resolver resolver(o.dns);
    Lookups l;
    l.txt = [&resolver](const std::string& name) {
      TxtLookup out;
      auto a = resolver.lookup_txt(name);
      if (a.status == mxguard::common::dns::Status::kOk) {
        out.status = TxtLookup::Status::kOk;
        out.records = a.records;
      } else if (a.status == mxguard::common::dns::Status::kNxDomain ||
                 a.status == mxguard::common::dns::Status::kNoData) {
        out.status = TxtLookup::Status::kNoRecord;
      } else {
        out.status = TxtLookup::Status::kTempError;
      }
      return out;
    };
    Reporter reporter(ri, store, org, l, sendmail_sender(o.report_sendmail));
    ReportRun r =
        reporter.run(static_cast<std::int64_t>(std::time(nullptr)), opts.dry_run, std::cout);
    std::cout << "periods " << r.periods << ", sent " << r.sent << ", written " << r.written
              << ", failed " << r.failed << ", skipped " << r.skipped << "\n";
    int rc = r.failed ? 75 : 0;
    write_metrics(opts.metrics_file, rc, &r);
    return rc;
  } catch (const std::exception& ex) {
    std::cerr << "mxguard-dmarc-report: " << ex.what() << "\n";
    write_metrics(opts.metrics_file, 1, nullptr);
    return 1;
  }
}
