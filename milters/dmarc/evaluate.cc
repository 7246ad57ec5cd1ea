// DMARC evaluation (see evaluate.h).
#include "milters/dmarc/evaluate.h"

namespace mxguard::milter::dmarc {

Evaluator::Evaluator(const OrgDomains& org, Lookups lookups, std::function<int()> random100)
    : org_(org), lookups_(std::move(lookups)), random100_(std::move(random100)) {}

std::optional<Evaluation> Evaluator::query(const std::string& domain, Evaluation e) const {
  TxtLookup answer = lookups_.txt("_dmarc." + domain);
  if (answer.status == TxtLookup::Status::kTempError) {
    e.result = "temperror";
    e.policy_domain = domain;
    e.problem = "DNS lookup of _dmarc." + domain + " failed";
    return e;
  }
  std::vector<std::string> candidates;
  for (auto& r : answer.records) {
    if (is_dmarc_record(r)) candidates.push_back(r);
  }
  if (candidates.empty()) return std::nullopt;
  e.policy_domain = domain;
  if (candidates.size() > 1) {
    // §6.6.3: several records → no DMARC processing; reported as permerror (§11.2).
    e.result = "permerror";
    e.problem = "several DMARC records at _dmarc." + domain;
    return e;
  }
  RecordParse parsed = parse_record(candidates.front());
  if (!parsed.record) {
    e.result = "permerror";
    e.problem = parsed.error;
    return e;
  }
  e.record = std::move(parsed.record);
  e.result = "";  // a usable record: evaluation decides
  return e;
}

Evaluation Evaluator::discover(const std::string& from_domain) const {
  Evaluation base;
  base.from_domain = from_domain;
  base.org_domain = org_.organizational(from_domain);
  if (auto e = query(from_domain, base)) {
    if (e->record) e->policy = e->record->p;
    return *e;
  }
  if (base.org_domain != from_domain) {
    if (auto e = query(base.org_domain, base)) {
      if (e->record) {
        const Record& r = *e->record;
        e->policy = r.sp.value_or(r.p);
        if (r.np && lookups_.nonexistent && lookups_.nonexistent(from_domain)) e->policy = *r.np;
      }
      return *e;
    }
  }
  base.result = "none";
  base.problem = "no DMARC record";
  return base;
}

Evaluation Evaluator::evaluate(const std::string& from_domain, const std::vector<AuthResult>& dkim,
                               const AuthResult& spf) const {
  Evaluation e = discover(from_domain);
  if (!e.record) return e;
  const Record& r = *e.record;
  for (const auto& d : dkim) {
    if (d.result == "pass" && org_.aligned(d.domain, from_domain, r.adkim == Alignment::kStrict)) {
      e.dkim_aligned = true;
    }
  }
  e.spf_aligned =
      spf.result == "pass" && org_.aligned(spf.domain, from_domain, r.aspf == Alignment::kStrict);
  if (e.dkim_aligned || e.spf_aligned) {
    e.result = "pass";
    e.disposition = Policy::kNone;
    return e;
  }
  e.result = "fail";
  e.disposition = e.policy;
  if (e.policy != Policy::kNone && r.pct < 100 && random100_() >= r.pct) {
    // §6.6.4: a message not selected gets the next lower policy.
    e.sampled_out = true;
    e.disposition = e.policy == Policy::kReject ? Policy::kQuarantine : Policy::kNone;
  }
  return e;
}

}  // namespace mxguard::milter::dmarc
