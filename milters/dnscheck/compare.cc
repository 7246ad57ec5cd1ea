// mxguard-dnscheck's decisions (see compare.h).
#include "milters/dnscheck/compare.h"

#include <algorithm>

#include "common/net/ip.h"
#include "common/spf/record.h"
#include "common/util/strings.h"
#include "milters/dkim/keygen.h"
#include "milters/dmarc/record.h"

namespace mxguard::milter::dnscheck {
namespace {

using common::dns::Status;
using common::util::iequals;
using common::util::lower;
using common::util::trim;

Fix txt_fix(const std::string& name, const std::string& value) {
  std::string zone = dkim::zone_txt(name + ".", value);
  while (!zone.empty() && zone.back() == '\n') zone.pop_back();
  return {name, "TXT", value, zone};
}

// Lower case, without trailing dots: how MX host names are compared.
std::string host_key(std::string_view host) {
  std::string h = lower(host);
  while (!h.empty() && h.back() == '.') h.pop_back();
  return h;
}

// `host` as host_key() gives it.
Fix mx_fix(const std::string& domain, const std::string& host) {
  std::string target = host + ".";
  return {domain, "MX", "10 " + target, domain + ".\tIN\tMX\t10 " + target};
}

bool failed(Status s) {
  return s == Status::kServFail || s == Status::kTimeout || s == Status::kError;
}

std::string status_text(Status s) { return std::string(common::dns::status_name(s)); }

std::string joined(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

std::string suggested_spf(const std::vector<std::string>& sending_ips) {
  if (sending_ips.empty()) return "v=spf1 mx -all";
  std::string record = "v=spf1";
  for (const auto& ip : sending_ips) record += " " + spf_term(ip);
  return record + " -all";
}

bool is_all(std::string_view term) {
  if (!term.empty() && (term[0] == '+' || term[0] == '-' || term[0] == '~' || term[0] == '?')) {
    term.remove_prefix(1);
  }
  return iequals(term, "all");
}

bool is_redirect(std::string_view term) {
  return term.size() >= 9 && iequals(term.substr(0, 9), "redirect=");
}

}  // namespace

std::string spf_term(std::string_view ip) {
  auto addr = common::net::IpAddress::parse(ip);
  if (!addr) return "";
  return (addr->is_v4() ? "ip4:" : "ip6:") + addr->to_string();
}

std::string spf_with_terms(std::string_view record, const std::vector<std::string>& terms) {
  std::vector<std::string> tokens;
  for (auto t : common::util::split(record, ' ')) {
    if (!t.empty()) tokens.emplace_back(t);
  }
  std::size_t at = tokens.size();
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    if (is_all(tokens[i]) || is_redirect(tokens[i])) {
      at = i;
      break;
    }
  }
  if (tokens.empty()) at = 0;
  std::vector<std::string> add;
  for (const auto& term : terms) {
    bool present = std::any_of(tokens.begin(), tokens.end(),
                               [&](const std::string& t) { return iequals(t, term); }) ||
                   std::find(add.begin(), add.end(), term) != add.end();
    if (!present && !term.empty()) add.push_back(term);
  }
  tokens.insert(tokens.begin() + static_cast<std::ptrdiff_t>(at), add.begin(), add.end());
  return joined(tokens, " ");
}

std::string dmarc_with_rua(std::string_view record, std::string_view uri) {
  std::vector<std::string> elements;
  bool replaced = false;
  for (auto e : common::util::split(record, ';')) {
    e = trim(e);
    if (e.empty()) continue;
    auto eq = e.find('=');
    if (eq != std::string_view::npos && iequals(trim(e.substr(0, eq)), "rua")) {
      if (replaced) continue;  // a second rua= is ignored by receivers anyway: drop it
      elements.push_back("rua=" + std::string(uri));
      replaced = true;
      continue;
    }
    elements.emplace_back(e);
  }
  if (!replaced) elements.push_back("rua=" + std::string(uri));
  return joined(elements, "; ");
}

Check judge_spf(const std::string& domain, const SpfFacts& facts,
                const std::vector<std::string>& sending_ips) {
  Check c;
  c.type = RecordType::kSpf;
  c.domain = domain;
  c.name = domain;
  c.expected = "one v=spf1 record of valid syntax, with at most " +
               std::to_string(kSpfMaxDnsTerms) + " DNS-querying terms and " +
               std::to_string(kSpfMaxVoidLookups) + " void lookups";
  if (!sending_ips.empty()) c.expected += ", passing " + joined(sending_ips, ", ");
  Fix suggestion = txt_fix(domain, suggested_spf(sending_ips));
  std::string suggestion_advice =
      sending_ips.empty() ? "the suggested record lets the domain's MX hosts send; name the "
                            "outgoing addresses (--sending-ip) for an exact record"
                          : "the suggested record names exactly the --sending-ip addresses";

  if (failed(facts.txt.status)) {
    c.add("dns-error", Severity::kError,
          "TXT lookup failed (" + status_text(facts.txt.status) + ")");
    return c;
  }
  for (const auto& r : facts.txt.records) {
    if (common::spf::is_spf_record(r)) c.published.push_back(r);
  }
  if (c.published.empty()) {
    c.add("missing", Severity::kMismatch,
          "no SPF record (" +
              (facts.txt.status == Status::kOk ? std::string("no TXT record starts with v=spf1")
                                               : status_text(facts.txt.status)) +
              ")");
    c.fixes.push_back(suggestion);
    c.advice.push_back(suggestion_advice);
    return c;
  }
  if (c.published.size() > 1) {
    c.add("multiple-records", Severity::kMismatch,
          std::to_string(c.published.size()) +
              " SPF records: receivers answer permerror (RFC 7208 §4.5)");
    c.advice.push_back("merge them into one record and delete the others");
    return c;
  }
  const std::string& record = c.published.front();
  std::string problem;
  auto parsed = common::spf::parse_record(record, &problem);
  if (!parsed) {
    c.add("bad-syntax", Severity::kMismatch, problem + ": receivers answer permerror");
    c.fixes.push_back(suggestion);
    c.advice.push_back(suggestion_advice + "; keep any other terms you need");
    return c;
  }
  if (!parsed->mechanisms.empty()) {
    const auto& last = parsed->mechanisms.back();
    if (last.kind == common::spf::Mechanism::Kind::kAll &&
        last.qualifier == common::spf::Qualifier::kPass) {
      c.add("all-pass", Severity::kWarning,
            "'" + last.text +
                "' lets every host on the Internet "
                "send as " +
                domain);
    }
  }

  const auto& walk = facts.walk;
  bool over_limit = false;
  if (walk.dns_terms > kSpfMaxDnsTerms) {
    over_limit = true;
    c.add("too-many-lookups", Severity::kMismatch,
          std::to_string(walk.dns_terms) +
              " DNS-querying terms (include, a, mx, ptr, exists, redirect; included records "
              "count): RFC 7208 §4.6.4 allows " +
              std::to_string(kSpfMaxDnsTerms) + ", receivers answer permerror");
    c.advice.push_back(
        "replace include: terms by the ip4:/ip6: ranges they stand for, or drop the ones "
        "you do not send through");
  }
  if (walk.void_lookups > kSpfMaxVoidLookups) {
    over_limit = true;
    c.add("too-many-void-lookups", Severity::kMismatch,
          std::to_string(walk.void_lookups) + " lookups answer no record: RFC 7208 §4.6.4 allows " +
              std::to_string(kSpfMaxVoidLookups) + ", receivers answer permerror");
    c.advice.push_back("remove the terms that name domains without records");
  }
  if (walk.result == common::spf::Result::kTemperror) {
    c.add("dns-error", Severity::kError, "evaluation: " + walk.problem);
  } else if (walk.result == common::spf::Result::kPermerror && !over_limit) {
    c.add("permerror", Severity::kMismatch, "evaluation: " + walk.problem);
  }

  std::vector<std::string> missing_terms;
  for (const auto& [ip, outcome] : facts.sending) {
    if (outcome.result == common::spf::Result::kPass) continue;
    std::string why = std::string(common::spf::result_name(outcome.result));
    if (!outcome.mechanism.empty()) why += " at '" + outcome.mechanism + "'";
    if (!outcome.problem.empty()) why += ": " + outcome.problem;
    if (outcome.result == common::spf::Result::kTemperror) {
      c.add("dns-error", Severity::kError, ip + ": " + why);
      continue;
    }
    c.add("not-authorized", Severity::kMismatch, ip + " does not pass: " + why);
    missing_terms.push_back(spf_term(ip));
  }
  if (!missing_terms.empty())
    c.fixes.push_back(txt_fix(domain, spf_with_terms(record, missing_terms)));
  return c;
}

Check judge_dkim(const std::string& domain, const std::string& selector,
                 const std::string& key_path, const dkim::PrivateKey& key,
                 const dkim::KeyCheck& check) {
  Check c;
  c.type = RecordType::kDkim;
  c.domain = domain;
  c.selector = selector;
  c.name = check.name;
  c.published = check.published;
  c.expected = key.public_record + " (the public half of " + key_path + ")";
  switch (check.status) {
    case dkim::KeyStatus::kMatch:
      break;
    case dkim::KeyStatus::kDnsError:
      c.add("dns-error", Severity::kError, check.message);
      return c;
    default:
      c.add(std::string(dkim::key_status_name(check.status)), Severity::kMismatch, check.message);
      c.fixes.push_back(txt_fix(check.name, key.public_record));
      if (check.published.size() > 1) {
        c.advice.push_back("delete the other TXT records at " + check.name);
      }
  }
  for (const auto& w : check.warnings) c.add("testing", Severity::kWarning, w);
  return c;
}

Check judge_dmarc(const std::string& domain, const DmarcFacts& facts, const std::string& rua) {
  Check c;
  c.type = RecordType::kDmarc;
  c.domain = domain;
  c.name = "_dmarc." + domain;
  c.expected = "one v=DMARC1 record with a valid p= and a rua= for aggregate reports";
  std::string uri = "mailto:" + rua;
  auto dmarc_records = [](const common::dns::Answer& a) {
    std::vector<std::string> out;
    for (const auto& r : a.records) {
      if (dmarc::is_dmarc_record(r)) out.push_back(r);
    }
    return out;
  };
  if (failed(facts.at_domain.status)) {
    c.add("dns-error", Severity::kError,
          c.name + ": TXT lookup failed (" + status_text(facts.at_domain.status) + ")");
    return c;
  }
  c.published = dmarc_records(facts.at_domain);
  if (c.published.empty() && !facts.org_domain.empty()) {
    // RFC 7489 §6.6.3: without a record of its own, the organizational domain's applies.
    std::string org_name = "_dmarc." + facts.org_domain;
    if (failed(facts.at_org.status)) {
      c.add("dns-error", Severity::kError,
            org_name + ": TXT lookup failed (" + status_text(facts.at_org.status) + ")");
      return c;
    }
    auto inherited = dmarc_records(facts.at_org);
    if (!inherited.empty()) {
      c.notes.push_back("no record at " + c.name + ": the organizational domain's record at " +
                        org_name + " applies (its sp=, else p=)");
      c.name = org_name;
      c.published = std::move(inherited);
    }
  }
  std::string fix_name = c.name;
  if (c.published.empty()) {
    c.add("missing", Severity::kMismatch, "no DMARC record at " + c.name);
    c.fixes.push_back(txt_fix(fix_name, "v=DMARC1; p=none; " + ("rua=" + uri)));
    c.advice.push_back(
        "p=none only collects reports; raise it to quarantine or reject once they "
        "show all of your mail passing");
    return c;
  }
  if (c.published.size() > 1) {
    c.add("multiple-records", Severity::kMismatch,
          std::to_string(c.published.size()) +
              " DMARC records: receivers apply no policy (RFC 7489 §6.6.3)");
    c.advice.push_back("keep one record and delete the others");
    return c;
  }
  const std::string& record = c.published.front();
  auto parsed = dmarc::parse_record(record);
  if (!parsed.record) {
    c.add("bad-syntax", Severity::kMismatch, parsed.error + ": receivers apply no policy");
    c.fixes.push_back(txt_fix(fix_name, "v=DMARC1; p=none; rua=" + uri));
    return c;
  }
  const dmarc::Record& rec = *parsed.record;
  if (rec.rua.empty()) {
    c.add("no-rua", Severity::kMismatch, "no usable rua=: no aggregate reports reach you");
    c.fixes.push_back(txt_fix(fix_name, dmarc_with_rua(record, uri)));
  }
  if (rec.p_repaired) {
    c.add("p-repaired", Severity::kWarning,
          "p= missing or invalid: receivers read p=none because rua= is valid");
  }
  if (!rec.ignored.empty()) {
    c.add("ignored-tags", Severity::kWarning,
          "tags ignored as invalid or repeated: " + joined(rec.ignored, ", "));
  }
  return c;
}

Check judge_mx(const std::string& domain, const MxFacts& facts,
               const std::vector<std::string>& expected_mx) {
  Check c;
  c.type = RecordType::kMx;
  c.domain = domain;
  c.name = domain;
  c.expected = "MX hosts with addresses";
  if (!expected_mx.empty()) c.expected += ", among them " + joined(expected_mx, ", ");
  if (failed(facts.mx.status)) {
    c.add("dns-error", Severity::kError, "MX lookup failed (" + status_text(facts.mx.status) + ")");
    return c;
  }
  std::vector<std::string> hosts;
  for (const auto& r : facts.mx.records) {
    c.published.push_back(std::to_string(r.preference) + " " + r.exchange);
    hosts.push_back(host_key(r.exchange));
  }
  if (facts.mx.status == Status::kNxDomain) {
    c.add("missing", Severity::kMismatch, domain + " does not exist (nxdomain)");
  } else if (hosts.empty()) {
    c.add("missing", expected_mx.empty() ? Severity::kWarning : Severity::kMismatch,
          "no MX record: mail to " + domain + " goes to its address records (RFC 5321 §5.1)");
  } else if (hosts.size() == 1 && hosts.front().empty()) {
    c.add("null-mx", Severity::kWarning,
          "null MX (RFC 7505): " + domain + " accepts no mail, bounces and reports to it included");
  }
  for (const auto& t : facts.targets) {
    if (failed(t.a) && failed(t.aaaa)) {
      c.add("dns-error", Severity::kError,
            t.host + ": address lookups failed (" + status_text(t.a) + ")");
    } else if (t.a != Status::kOk && t.aaaa != Status::kOk && !failed(t.a) && !failed(t.aaaa)) {
      c.add("no-address", Severity::kMismatch, "MX host " + t.host + " has no A or AAAA record");
    }
  }
  for (const auto& want : expected_mx) {
    if (std::find(hosts.begin(), hosts.end(), host_key(want)) != hosts.end()) continue;
    c.add("mx-absent", Severity::kMismatch, host_key(want) + " is not an MX host of " + domain);
    c.fixes.push_back(mx_fix(domain, host_key(want)));
  }
  return c;
}

}  // namespace mxguard::milter::dnscheck
