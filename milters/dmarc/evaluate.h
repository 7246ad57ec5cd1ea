// DMARC evaluation (RFC 7489 §6.6): policy discovery (_dmarc at the author domain, then at its
// organizational domain; sp= and DMARCbis np= for subdomains), identifier alignment of the
// DKIM and SPF results we trust, and the disposition after pct= sampling. Free of libmilter and
// DNS: lookups and randomness are injected, so every branch is testable.
// Must never let a DNS failure look like "no policy" (that is temperror), and never apply a
// stricter disposition than the record asks for.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "milters/dmarc/orgdomain.h"
#include "milters/dmarc/record.h"

namespace mxguard::milter::dmarc {

struct TxtLookup {
  enum class Status { kOk, kNoRecord, kTempError } status = Status::kNoRecord;
  std::vector<std::string> records;  // TXT strings concatenated per record
};

struct Lookups {
  std::function<TxtLookup(const std::string& name)> txt;
  // True when the name does not exist at all (NXDOMAIN): DMARCbis np=. Errors → false.
  std::function<bool(const std::string& name)> nonexistent;
};

struct AuthResult {
  std::string domain;    // d= for DKIM, the checked domain for SPF
  std::string result;    // "pass", "fail", …
  std::string selector;  // DKIM only (reports)
  friend bool operator==(const AuthResult&, const AuthResult&) = default;
};

struct Evaluation {
  std::string result = "none";  // pass|fail|none|temperror|permerror (RFC 7489 §11.2)
  std::string from_domain;
  std::string policy_domain;  // where the record was found (the From or org domain)
  std::string org_domain;
  std::optional<Record> record;
  Policy policy = Policy::kNone;       // p, sp or np as applies
  Policy disposition = Policy::kNone;  // after pct= (what the policy asks us to do)
  bool sampled_out = false;            // pct= chose the next lower policy
  bool dkim_aligned = false;
  bool spf_aligned = false;
  std::string problem;  // why temperror/permerror/none
};

class Evaluator {
 public:
  // random100() returns 0..99 (pct= sampling); inject a fixed source in tests.
  Evaluator(const OrgDomains& org, Lookups lookups, std::function<int()> random100);

  // Policy discovery only (fills from/policy/org domain, record, policy, result none/
  // temperror/permerror when no usable record).
  Evaluation discover(const std::string& from_domain) const;
  // Discovery plus alignment and disposition.
  Evaluation evaluate(const std::string& from_domain, const std::vector<AuthResult>& dkim,
                      const AuthResult& spf) const;

 private:
  // One _dmarc lookup: nullopt when no DMARC record exists there.
  std::optional<Evaluation> query(const std::string& name, Evaluation base) const;

  const OrgDomains& org_;
  Lookups lookups_;
  std::function<int()> random100_;
};

}  // namespace mxguard::milter::dmarc
