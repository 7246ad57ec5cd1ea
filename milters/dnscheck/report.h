// What mxguard-dnscheck found, as values: one Check per record (SPF, each DKIM selector, DMARC,
// MX) with what is published, what we expect, the problems and the fix, printed for people or
// as JSON for scripts. Printing only: nothing here looks anything up or decides.
// Must never print a fix that differs from the record it stands for (one printer: keygen's).
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::milter::dnscheck {

// Ordered: a check's status is its worst problem's severity.
enum class Severity {
  kOk,
  kWarning,   // works, but worth a look (t=y, ignored DMARC tags, no MX)
  kMismatch,  // not what we expect: a fix is due
  kError,     // the lookup failed (SERVFAIL, timeout): nothing can be said
};
std::string_view severity_name(Severity s);  // "ok", "warning", "mismatch", "error"

enum class RecordType { kSpf, kDkim, kDmarc, kMx };
std::string_view record_type_name(RecordType t);  // "spf", "dkim", "dmarc", "mx"

struct Problem {
  std::string code;  // stable, documented: "missing", "wrong-key", "too-many-lookups", …
  Severity severity = Severity::kMismatch;
  std::string message;
};

// One record to publish, exactly.
struct Fix {
  std::string name;   // owner, absolute, without the trailing dot
  std::string type;   // "TXT" or "MX"
  std::string value;  // the TXT value (strings concatenated) or "10 mx.example.org."
  std::string zone;   // zone-file form, owner with its trailing dot
};

struct Check {
  RecordType type = RecordType::kSpf;
  std::string domain;
  std::string selector;                // DKIM only
  std::string name;                    // the name looked up (or where the record was found)
  std::vector<std::string> published;  // the relevant records found there
  std::string expected;                // what we expect, in words or as the record itself
  std::vector<Problem> problems;
  std::vector<Fix> fixes;           // empty when no exact record can be given
  std::vector<std::string> advice;  // what to do when a record alone cannot say it
  std::vector<std::string> notes;   // context (the parent domain's DMARC record applies, …)

  Severity status() const;
  void add(std::string code, Severity severity, std::string message) {
    problems.push_back({std::move(code), severity, std::move(message)});
  }
};

struct Report {
  std::vector<Check> checks;
  std::vector<std::string> notes;  // about the inputs (SigningTable patterns naming no domain)
};

// 0 when every check is ok or a warning; 1 when any is a mismatch or an error.
int exit_code(const Report& r);

// For people: per domain, per record: status, published, expected, problems, fix.
void print_text(const Report& r, std::ostream& out);
// One JSON object (docs/mxguard-dnscheck.md shows its shape), ending in a newline.
void print_json(const Report& r, std::ostream& out);

}  // namespace mxguard::milter::dnscheck
