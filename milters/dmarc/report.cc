// Aggregate report building and sending (see report.h).
#include "milters/dmarc/report.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <ostream>
#include <stdexcept>

#include "common/mail/from.h"
#include "milters/dmarc/record.h"

extern char** environ;

namespace mxguard::milter::dmarc {
namespace {

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // XML 1.0 forbids most control characters; our data never needs them.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t')
          out += '?';
        else
          out += c;
    }
  }
  return out;
}

void element(std::string& out, int indent, std::string_view name, std::string_view value) {
  out.append(static_cast<std::size_t>(indent) * 2, ' ');
  out += "<" + std::string(name) + ">" + xml_escape(value) + "</" + std::string(name) + ">\n";
}

std::string one_of(const std::string& v, std::initializer_list<const char*> allowed,
                   const char* fallback) {
  for (const char* a : allowed) {
    if (v == a) return v;
  }
  return fallback;
}

std::string dkim_result(const std::string& r) {
  return one_of(r, {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"},
                "neutral");
}

std::string spf_result(const std::string& r) {
  return one_of(r, {"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"},
                "none");
}

std::string base64_lines(const std::string& data) {
  std::string out;
  for (std::size_t i = 0; i < data.size(); i += 57) {
    std::size_t n = std::min<std::size_t>(57, data.size() - i);
    unsigned char buf[80];
    int len = EVP_EncodeBlock(buf, reinterpret_cast<const unsigned char*>(data.data() + i),
                              static_cast<int>(n));
    out.append(reinterpret_cast<char*>(buf), static_cast<std::size_t>(len));
    out += "\r\n";
  }
  return out;
}

std::string rfc5322_date(std::int64_t now) {
  std::time_t t = static_cast<std::time_t>(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

}  // namespace

std::string report_id(const ReporterInfo& info, const Period& p) {
  return p.domain + "." + std::to_string(p.begin) + "@" + info.receiver_domain;
}

std::string report_xml(const ReporterInfo& info, const PeriodData& d) {
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n";
  element(x, 1, "version", "1.0");
  x += "  <report_metadata>\n";
  element(x, 2, "org_name", info.org_name);
  element(x, 2, "email", info.email);
  if (!info.extra_contact.empty()) element(x, 2, "extra_contact_info", info.extra_contact);
  element(x, 2, "report_id", report_id(info, d.period));
  x += "    <date_range>\n";
  element(x, 3, "begin", std::to_string(d.period.begin));
  element(x, 3, "end", std::to_string(d.period.end - 1));
  x += "    </date_range>\n  </report_metadata>\n  <policy_published>\n";
  const Published& p = d.published;
  element(x, 2, "domain", d.period.domain);
  element(x, 2, "adkim", one_of(p.adkim, {"r", "s"}, "r"));
  element(x, 2, "aspf", one_of(p.aspf, {"r", "s"}, "r"));
  element(x, 2, "p", one_of(p.p, {"none", "quarantine", "reject"}, "none"));
  element(x, 2, "sp", one_of(p.sp, {"none", "quarantine", "reject"}, "none"));
  element(x, 2, "pct", std::to_string(p.pct));
  element(x, 2, "fo", p.fo);
  x += "  </policy_published>\n";
  for (const auto& [row, count] : d.rows) {
    x += "  <record>\n    <row>\n";
    element(x, 3, "source_ip", row.source_ip);
    element(x, 3, "count", std::to_string(count));
    x += "      <policy_evaluated>\n";
    element(x, 4, "disposition", one_of(row.disposition, {"none", "quarantine", "reject"}, "none"));
    element(x, 4, "dkim", one_of(row.dkim_eval, {"pass", "fail"}, "fail"));
    element(x, 4, "spf", one_of(row.spf_eval, {"pass", "fail"}, "fail"));
    if (!row.override_type.empty()) {
      x += "        <reason>\n";
      element(x, 5, "type",
              one_of(row.override_type,
                     {"forwarded", "sampled_out", "trusted_forwarder", "mailing_list",
                      "local_policy", "other"},
                     "other"));
      if (!row.override_comment.empty()) element(x, 5, "comment", row.override_comment);
      x += "        </reason>\n";
    }
    x += "      </policy_evaluated>\n    </row>\n    <identifiers>\n";
    element(x, 3, "header_from", row.header_from);
    x += "    </identifiers>\n    <auth_results>\n";
    for (const auto& k : row.dkim) {
      x += "      <dkim>\n";
      element(x, 4, "domain", k.domain);
      if (!k.selector.empty()) element(x, 4, "selector", k.selector);
      element(x, 4, "result", dkim_result(k.result));
      x += "      </dkim>\n";
    }
    x += "      <spf>\n";
    element(x, 4, "domain", row.spf.domain.empty() ? row.header_from : row.spf.domain);
    element(x, 4, "scope", one_of(row.spf_scope, {"helo", "mfrom"}, "mfrom"));
    element(x, 4, "result", spf_result(row.spf.result));
    x += "      </spf>\n    </auth_results>\n  </record>\n";
  }
  x += "</feedback>\n";
  return x;
}

std::string report_filename(const ReporterInfo& info, const Period& p) {
  return info.receiver_domain + "!" + p.domain + "!" + std::to_string(p.begin) + "!" +
         std::to_string(p.end - 1) + "!" + std::to_string(p.begin) + ".xml.gz";
}

std::string gzip(const std::string& data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, data.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip failed");
  out.resize(zs.total_out);
  return out;
}

std::string report_message(const ReporterInfo& info, const Period& p, const std::string& to,
                           const std::string& gz, std::int64_t now) {
  std::string file = report_filename(info, p);
  std::string boundary = "=_mxguard_" + std::to_string(p.begin) + "_" + std::to_string(now);
  std::string id = report_id(info, p);
  std::string m;
  m += "From: " + info.email + "\r\n";
  // `to` is a strict report address (parse_report_address): no spaces, quotes or controls.
  m += "To: <" + to + ">\r\n";
  m += "Date: " + rfc5322_date(now) + "\r\n";
  m += "Subject: Report Domain: " + p.domain + " Submitter: " + info.receiver_domain +
       " Report-ID: <" + id + ">\r\n";
  m += "Message-ID: <" + std::to_string(now) + "." + id + ">\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n";
  m += "This is a MIME-formatted message.\r\n\r\n--" + boundary + "\r\n";
  m += "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
  m += "DMARC aggregate report for " + p.domain + " from " + info.org_name + ",\r\n";
  m += "covering " + rfc5322_date(p.begin) + " to " + rfc5322_date(p.end - 1) + ".\r\n\r\n";
  m += "--" + boundary + "\r\n";
  m += "Content-Type: application/gzip; name=\"" + file + "\"\r\n";
  m += "Content-Transfer-Encoding: base64\r\n";
  m += "Content-Disposition: attachment; filename=\"" + file + "\"\r\n\r\n";
  m += base64_lines(gz);
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

Sender sendmail_sender(const std::string& program) {
  return [program](const std::string& from, const std::string& to, const std::string& message,
                   std::string& error) {
    int in[2];
    if (::pipe2(in, O_CLOEXEC) != 0) {
      error = std::string("pipe: ") + std::strerror(errno);
      return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    std::vector<std::string> args{program, "-i", "-f", from, "--", to};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, program.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    if (rc != 0) {
      ::close(in[1]);
      error = program + ": " + std::strerror(rc);
      return false;
    }
    // LF line endings towards sendmail(1), as local submission expects.
    std::string text;
    text.reserve(message.size());
    for (std::size_t i = 0; i < message.size(); ++i) {
      if (message[i] == '\r' && i + 1 < message.size() && message[i + 1] == '\n') continue;
      text += message[i];
    }
    // A sendmail that exits without reading (it refused the message) must not kill us with
    // SIGPIPE: the write fails with EPIPE and the exit status says why.
    struct sigaction ignore {
    }, previous{};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, &previous);
    std::size_t off = 0;
    bool write_ok = true;
    while (off < text.size()) {
      ssize_t n = ::write(in[1], text.data() + off, text.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        write_ok = false;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    ::close(in[1]);
    ::sigaction(SIGPIPE, &previous, nullptr);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!write_ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      error = program + " failed" +
              (WIFEXITED(status) ? " with exit " + std::to_string(WEXITSTATUS(status)) : "");
      return false;
    }
    return true;
  };
}

Reporter::Reporter(ReporterInfo info, AggregateStore& store, const OrgDomains& org, Lookups lookups,
                   Sender sender)
    : info_(std::move(info)),
      store_(store),
      org_(org),
      lookups_(std::move(lookups)),
      sender_(std::move(sender)) {}

Reporter::Destination Reporter::destination_allowed(const std::string& domain,
                                                    const ReportUri& uri) {
  // The domain checked is the one parse_uri_list split off the address the report goes to.
  auto parsed = parse_report_address(uri.address);
  if (!parsed || parsed->domain != uri.domain) return Destination::kDenied;
  const std::string& dest = parsed->domain;
  if (org_.organizational(dest) == org_.organizational(domain)) return Destination::kAllowed;
  TxtLookup t = lookups_.txt(domain + "._report._dmarc." + dest);
  if (t.status == TxtLookup::Status::kTempError) return Destination::kRetry;
  for (const auto& r : t.records) {
    if (is_dmarc_record(r)) return Destination::kAllowed;
  }
  return Destination::kDenied;
}

ReportRun Reporter::run(std::int64_t now, const std::string& dry_run_dir, std::ostream& log) {
  ReportRun result;
  for (const Period& p : store_.pending()) {
    // Still being counted, or only just over: a message evaluated at the end of the period (or
    // by an MX host whose clock is behind) may still add to it, and what arrives after the
    // report is sent would be deleted unreported or reported twice.
    if (p.end + info_.delay > now) continue;
    ++result.periods;
    PeriodData data = store_.load(p);
    std::string label = p.domain + " " + std::to_string(p.begin) + "-" + std::to_string(p.end);
    auto rua = parse_uri_list(data.published.rua);
    if (data.rows.empty() || rua.empty()) {
      log << "report " << label << ": " << (data.rows.empty() ? "no data left" : "no rua")
          << ", dropped\n";
      if (dry_run_dir.empty()) store_.remove(p);
      ++result.skipped;
      continue;
    }
    std::string gz = gzip(report_xml(info_, data));
    std::string file = report_filename(info_, p);
    if (!dry_run_dir.empty()) {
      std::ofstream f(dry_run_dir + "/" + file, std::ios::binary);
      f.write(gz.data(), static_cast<std::streamsize>(gz.size()));
      if (!f) {
        log << "report " << label << ": cannot write " << dry_run_dir << "/" << file << "\n";
        ++result.failed;
        continue;
      }
      log << "report " << label << ": wrote " << dry_run_dir << "/" << file << " ("
          << data.rows.size() << " rows)\n";
      ++result.written;
      continue;
    }
    bool all_ok = true;
    int delivered = 0;
    for (const auto& uri : rua) {
      Destination d = destination_allowed(p.domain, uri);
      if (d == Destination::kRetry) {
        log << "report " << label << ": cannot verify " << uri.address << " now, kept\n";
        all_ok = false;
        continue;
      }
      if (d == Destination::kDenied) {
        log << "report " << label << ": " << uri.address << " did not authorise reports for "
            << p.domain << " (RFC 7489 7.1), skipped\n";
        continue;
      }
      if (uri.max_size && gz.size() > uri.max_size) {
        log << "report " << label << ": " << gz.size() << " bytes exceed " << uri.address
            << "'s limit of " << uri.max_size << ", skipped\n";
        continue;
      }
      std::string error;
      if (!sender_(info_.email, uri.address, report_message(info_, p, uri.address, gz, now),
                   error)) {
        log << "report " << label << ": sending to " << uri.address << " failed: " << error
            << ", kept\n";
        all_ok = false;
        continue;
      }
      ++delivered;
      log << "report " << label << ": sent to " << uri.address << " (" << data.rows.size()
          << " rows, " << gz.size() << " bytes)\n";
    }
    if (all_ok) {
      store_.remove(p);
      ++result.sent;
      if (delivered == 0) log << "report " << label << ": no permitted destination, dropped\n";
    } else {
      ++result.failed;
    }
  }
  return result;
}

}  // namespace mxguard::milter::dmarc
