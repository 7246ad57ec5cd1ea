// From headers, evaluation and options → what mxguard-dmarc does (see decision.h).
#include "milters/dmarc/decision.h"

#include <algorithm>

#include "common/mail/from.h"

namespace mxguard::milter::dmarc {
namespace {

using common::mail::normalize_domain;
using A = Decision::Action;

int severity(const Evaluation& e) {
  if (e.result == "fail") return 10 + static_cast<int>(e.disposition);
  if (e.result == "temperror") return 5;
  if (e.result == "permerror") return 3;
  if (e.result == "none") return 2;
  return 1;  // pass
}

void reply(Decision& d, A action, std::string rcode, std::string xcode, std::string text) {
  d.action = action;
  d.rcode = std::move(rcode);
  d.xcode = std::move(xcode);
  d.text = std::move(text);
}

}  // namespace

std::string ArcVerdict::summary() const {
  std::string out = "arc=" + result;
  for (const auto& s : sealers) {
    std::string n = std::to_string(s.instance);
    out += " as[" + n + "].d=" + s.domain;
    if (!s.selector.empty()) out += " as[" + n + "].s=" + s.selector;
  }
  if (!remote_ip.empty()) out += " remote-ip=" + remote_ip;
  return out;
}

ArcVerdict read_arc(const common::authres::Result& r) {
  ArcVerdict v;
  v.result = r.result == "pass" || r.result == "none" ? r.result : "fail";
  if (const auto* ip = r.property("smtp", "remote-ip")) v.remote_ip = *ip;
  std::string_view c = r.comment;
  if (c.size() >= 2 && c.front() == '(' && c.back() == ')') c = c.substr(1, c.size() - 2);
  // Items "as[N].d=domain" / "as[N].s=selector", separated by white space.
  while (!c.empty()) {
    auto start = c.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    c.remove_prefix(start);
    auto end = c.find_first_of(" \t");
    std::string_view item = c.substr(0, end);
    c.remove_prefix(end == std::string_view::npos ? c.size() : end);
    if (!item.starts_with("as[")) continue;
    auto close = item.find("].");
    if (close == std::string_view::npos || close < 4 || close > 5) continue;
    int n = 0;
    bool digits = true;
    for (char ch : item.substr(3, close - 3)) {
      if (ch < '0' || ch > '9') digits = false;
      n = n * 10 + (ch - '0');
    }
    if (!digits || n < 1 || n > 50 || item.size() < close + 4 || item[close + 3] != '=') continue;
    char tag = item[close + 2];
    std::string value(item.substr(close + 4));
    if (value.empty() || (tag != 'd' && tag != 's')) continue;
    auto it = std::find_if(v.sealers.begin(), v.sealers.end(),
                           [n](const ArcSealer& s) { return s.instance == n; });
    if (it == v.sealers.end()) {
      v.sealers.push_back(ArcSealer{n, "", ""});
      it = v.sealers.end() - 1;
    }
    if (tag == 'd') {
      it->domain = normalize_domain(value);
    } else {
      it->selector = value;
    }
  }
  std::stable_sort(v.sealers.begin(), v.sealers.end(),
                   [](const ArcSealer& a, const ArcSealer& b) { return a.instance > b.instance; });
  // Without the newest seal's signer there is nobody to trust: an older sealer must never move
  // up into its place.
  if (!v.sealers.empty() && v.sealers.front().domain.empty()) v.sealers.clear();
  std::erase_if(v.sealers, [](const ArcSealer& s) { return s.domain.empty(); });
  return v;
}

Authors read_authors(const std::vector<std::string>& values, std::size_t count,
                     unsigned max_addresses) {
  Authors a;
  if (count == 0) a.problem = "no From header";
  for (const auto& v : values) {
    common::mail::FromParse p = common::mail::parse_from(v, {8192, max_addresses});
    if (!p.ok()) {
      a.problem = "From: " + p.error;
      break;
    }
    for (const auto& m : p.mailboxes) {
      if (std::find(a.domains.begin(), a.domains.end(), m.domain) == a.domains.end()) {
        a.domains.push_back(m.domain);
      }
    }
  }
  if (a.problem.empty() && count > values.size()) a.problem = "too many From headers";
  return a;
}

Evaluation strictest(const std::vector<Evaluation>& evaluations) {
  Evaluation worst;
  bool first = true;
  for (const auto& e : evaluations) {
    if (first || severity(e) > severity(worst)) worst = e;
    first = false;
  }
  return worst;
}

bool in_or_under(const std::string& name, const std::vector<std::string>& domains) {
  std::string n = normalize_domain(name);
  if (n.empty()) return false;
  for (const auto& d0 : domains) {
    std::string d = normalize_domain(d0);
    if (n == d || (n.size() > d.size() && n.ends_with(d) && n[n.size() - d.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

std::string expand_reject_text(std::string_view text_in, std::string_view from_domain) {
  std::string text(text_in);
  for (auto pos = text.find("%d"); pos != std::string::npos; pos = text.find("%d", pos)) {
    text.replace(pos, 2, from_domain);
    pos += from_domain.size();
  }
  return text;
}

std::optional<Decision> screen(const Message& m, std::size_t max_deletions) {
  Decision d;
  if (!m.skip.empty()) {
    d.skipped = m.skip;
    d.log = {{"dmarc", "skipped"},
             {"reason", m.skip},
             {"client", m.client.empty() ? "local" : m.client}};
    return d;
  }
  if (m.forged_authres > max_deletions) {
    // More forged results than we delete (see mxguard-dkim, which does the same first).
    d.forged_rejected = true;
    reply(d, A::kReject, "550", "5.7.1", "Message carries forged Authentication-Results headers");
    d.log = {{"dmarc", "reject"},
             {"reason", "forged-authentication-results"},
             {"forged_ar", std::to_string(m.forged_authres)}};
    return d;
  }
  return std::nullopt;
}

std::optional<Decision> judge_authors(const Message& m, const Authors& authors, const Options& o) {
  Decision d;
  if (!authors.problem.empty()) {
    bool reject = o.parsed.on_bad_from == BadFromAction::kReject && o.enforce;
    d.counted_result = "permerror";
    d.counted_action = reject ? "reject" : "accept";
    d.authres.push_back({"dmarc", "", "permerror", authors.problem, "", {}});
    d.log = {{"dmarc", "permerror"},
             {"action", reject ? "reject" : "accept"},
             {"reason", authors.problem},
             {"client", m.client},
             {"forged_ar_removed", std::to_string(m.forged_authres)}};
    if (reject) {
      reply(d, A::kReject, "550", "5.7.1",
            "Message must have one From header with valid addresses (RFC 5322)");
    }
    return d;
  }
  if (authors.domains.size() > 1 && o.parsed.multi_from == MultiFromAction::kReject) {
    std::string list;
    for (const auto& domain : authors.domains) list += (list.empty() ? "" : ",") + domain;
    d.counted_result = "permerror";
    d.counted_action = o.enforce ? "reject" : "accept";
    d.authres.push_back({"dmarc", "", "permerror", "several From domains", "", {}});
    d.log = {{"dmarc", "permerror"},
             {"action", o.enforce ? "reject" : "accept"},
             {"reason", "several From domains"},
             {"from", list},
             {"client", m.client}};
    if (o.enforce) {
      reply(d, A::kReject, "550", "5.7.1", "Messages with several From domains are not accepted");
    }
    return d;
  }
  return std::nullopt;
}

Decision decide(const Message& m, const Evaluated& ev, const Options& o) {
  const Evaluation& e = ev.evaluation;
  Decision d;
  d.counted_result = e.result;
  std::string action = "accept";
  d.applied = e.result == "fail" ? e.disposition : Policy::kNone;
  if (e.sampled_out) d.override_type = "sampled_out";
  if (e.result == "temperror") {
    if (o.parsed.on_temperror == TemperrorAction::kTempfail) {
      action = "tempfail";
      reply(d, A::kTempfail, "451", "4.7.1",
            "DMARC policy of " + e.from_domain + " could not be determined, try again later");
    }
  } else if (d.applied != Policy::kNone) {
    // Only identities somebody verified count, or any sender could claim a list's envelope
    // domain: the envelope domain with an SPF pass (our own check), a DKIM pass for the
    // domain (from our A-R header), or the client host name (Postfix passes it only when
    // its forward and reverse lookups agree).
    const auto& never = o.never_reject_domains;
    bool forwarder = (ev.spf.result == "pass" && in_or_under(ev.spf.domain, never)) ||
                     std::any_of(ev.dkim.begin(), ev.dkim.end(),
                                 [&](const AuthResult& a) {
                                   return a.result == "pass" && in_or_under(a.domain, never);
                                 }) ||
                     in_or_under(m.client_host, never);
    // The newest seal is the hop that handed the message to us and vouches for what it saw;
    // the older seals are vouched for by the chain being intact (cv=pass all along).
    bool arc_trusted = ev.arc.result == "pass" && !ev.arc.sealers.empty() &&
                       in_or_under(ev.arc.sealers.front().domain, o.trusted_arc_sealers);
    if (!o.enforce) {
      action = "none (monitor)";
      d.override_type = "local_policy";
      d.applied = Policy::kNone;
    } else if (forwarder) {
      action = "none (never-reject-domains)";
      d.override_type = "trusted_forwarder";
      d.applied = Policy::kNone;
    } else if (arc_trusted) {
      action = "none (trusted-arc-sealer)";
      d.override_type = "local_policy";
      d.override_comment = ev.arc.summary();
      d.applied = Policy::kNone;
    } else if (d.applied == Policy::kReject) {
      action = "reject";
      reply(d, A::kReject, "550", "5.7.1", expand_reject_text(o.reject_text, e.from_domain));
    } else {
      switch (o.parsed.quarantine_action) {
        case QuarantineAction::kHold:
          action = "hold";
          d.action = A::kHold;
          d.hold_reason = "DMARC policy of " + e.from_domain;
          break;
        case QuarantineAction::kHeader:
          action = "header";
          d.action = A::kHeader;
          break;
        case QuarantineAction::kAccept:
          action = "accept";
          d.override_type = "local_policy";
          d.applied = Policy::kNone;
          break;
      }
    }
  }
  d.counted_action = action.substr(0, action.find(' '));

  // Our results in our A-R header (not needed on a reject or tempfail, so not written then).
  if (d.action != A::kReject && d.action != A::kTempfail) {
    if (o.spf_self_check) {
      bool helo = ev.spf_scope == "helo";
      common::authres::Result spf{"spf", "", ev.spf.result, "", "", {}};
      spf.properties.push_back(
          {"smtp", helo ? "helo" : "mailfrom", helo ? ev.spf.domain : m.envelope_from});
      d.authres.push_back(spf);
    }
    common::authres::Result dm{"dmarc", "", e.result, "", "", {}};
    if (e.record) {
      dm.comment =
          "p=" + std::string(policy_name(e.policy)) + " dis=" + std::string(policy_name(d.applied));
    } else if (!e.problem.empty() && e.result != "none") {
      dm.reason = e.problem;
    }
    dm.properties.push_back({"header", "from", e.from_domain});
    d.authres.push_back(dm);
  }

  // Aggregate report data: every message evaluated against a record with rua= counts.
  if (o.aggregate_reports && e.record && !e.record->rua.empty()) {
    Row row;
    row.source_ip = m.client;
    row.disposition = std::string(policy_name(d.applied));
    row.dkim_eval = e.dkim_aligned ? "pass" : "fail";
    row.spf_eval = e.spf_aligned ? "pass" : "fail";
    row.override_type = d.override_type;
    row.override_comment = d.override_comment;
    row.header_from = e.from_domain;
    row.envelope_from = m.envelope_domain;
    row.dkim = ev.dkim;
    row.spf = ev.spf;
    row.spf_scope = ev.spf_scope;
    d.aggregate = Decision::Aggregate{published_from(e), std::move(row)};
  }

  std::string dkim_summary;
  for (const auto& a : ev.dkim) {
    dkim_summary += (dkim_summary.empty() ? "" : ",") + a.result + "/" + a.domain;
  }
  d.log = {
      {"dmarc", e.result},
      {"action", action},
      {"from", e.from_domain},
      {"policy_domain", e.policy_domain.empty() ? "-" : e.policy_domain},
      {"p", e.record ? std::string(policy_name(e.policy)) : "-"},
      {"dis", std::string(policy_name(d.applied))},
      {"dkim", dkim_summary.empty() ? "none" : dkim_summary},
      {"spf", ev.spf.result + "/" + (ev.spf.domain.empty() ? "-" : ev.spf.domain)},
      {"aligned", std::string(e.dkim_aligned ? "dkim" : "") +
                      (e.dkim_aligned && e.spf_aligned ? "," : "") + (e.spf_aligned ? "spf" : "")},
      {"override", d.override_type},
      {"problem", e.problem},
      {"client", m.client},
      {"forged_ar_removed", std::to_string(m.forged_authres)}};
  if (ev.arc.result != "none") {
    // After "override": the chain (its newest sealer) a reader needs next to the override.
    std::string arc = ev.arc.result;
    if (!ev.arc.sealers.empty()) arc += "/" + ev.arc.sealers.front().domain;
    auto at = std::find_if(d.log.begin(), d.log.end(),
                           [](const auto& f) { return f.first == "override"; });
    d.log.insert(at + 1, {"arc", arc});
  }
  return d;
}

}  // namespace mxguard::milter::dmarc
