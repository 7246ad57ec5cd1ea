// mxguard-dnscheck's lookups and the command (see dnscheck.h).
#include "milters/dnscheck/dnscheck.h"

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "common/mail/from.h"
#include "common/net/ip.h"
#include "common/spf/spf.h"
#include "milters/dkim/key_record.h"
#include "milters/dkim/options.h"
#include "milters/dmarc/record.h"
#include "milters/dnscheck/compare.h"

namespace mxguard::milter::dnscheck {
namespace {

// Remote input has limits: a zone with a hundred MX hosts costs at most this many address
// lookups pairs (the rest are listed, not resolved).
constexpr std::size_t kMaxMxTargets = 16;
// Reserved (RFC 1112 §4, 240/4): no SPF record designates it, so the walk visits every term.
constexpr const char* kWalkAddress = "240.0.0.1";

common::spf::Request spf_request(const std::string& domain, const common::net::IpAddress& ip) {
  common::spf::Request req;
  req.ip = ip;
  req.domain = domain;
  req.sender = "postmaster@" + domain;
  req.helo = domain;
  return req;
}

SpfFacts lookup_spf(common::dns::Resolver& resolver, const std::string& domain,
                    const std::vector<std::string>& sending_ips) {
  SpfFacts facts;
  facts.txt = resolver.lookup_txt(domain);
  common::spf::Limits wide;
  // Far enough past the RFC's limits to say by how much a record is over, and still bounded.
  wide.max_dns_terms = 5 * kSpfMaxDnsTerms;
  wide.max_void_lookups = 5 * kSpfMaxDnsTerms;
  common::spf::Evaluator walker(resolver, wide);
  facts.walk = walker.check_host(spf_request(domain, *common::net::IpAddress::parse(kWalkAddress)));
  common::spf::Evaluator standard(resolver);
  for (const auto& ip : sending_ips) {
    auto addr = common::net::IpAddress::parse(ip);
    if (addr) facts.sending.emplace_back(ip, standard.check_host(spf_request(domain, *addr)));
  }
  return facts;
}

bool has_dmarc_record(const common::dns::Answer& a) {
  return std::any_of(a.records.begin(), a.records.end(),
                     [](const std::string& r) { return dmarc::is_dmarc_record(r); });
}

DmarcFacts lookup_dmarc(common::dns::Resolver& resolver, const std::string& domain,
                        const dmarc::OrgDomains* org) {
  DmarcFacts facts;
  facts.at_domain = resolver.lookup_txt("_dmarc." + domain);
  std::string org_domain = org != nullptr ? org->organizational(domain) : domain;
  if (org_domain != domain) {
    facts.org_domain = org_domain;
    bool lookup_ok = facts.at_domain.status == common::dns::Status::kOk ||
                     facts.at_domain.status == common::dns::Status::kNxDomain ||
                     facts.at_domain.status == common::dns::Status::kNoData;
    if (lookup_ok && !has_dmarc_record(facts.at_domain)) {
      facts.at_org = resolver.lookup_txt("_dmarc." + org_domain);
    }
  }
  return facts;
}

MxFacts lookup_mx(common::dns::Resolver& resolver, const std::string& domain,
                  std::vector<std::string>& notes) {
  MxFacts facts;
  facts.mx = resolver.lookup_mx(domain);
  for (const auto& r : facts.mx.records) {
    if (r.exchange.empty() || r.exchange == ".") continue;  // null MX: nothing to resolve
    if (facts.targets.size() == kMaxMxTargets) {
      notes.push_back("only the first " + std::to_string(kMaxMxTargets) +
                      " MX hosts were checked for addresses");
      break;
    }
    MxTarget t;
    t.host = r.exchange;
    t.a = resolver.lookup_a(r.exchange).status;
    t.aaaa = resolver.lookup_aaaa(r.exchange).status;
    facts.targets.push_back(std::move(t));
  }
  return facts;
}

std::string normalized_domain(const std::string& name) {
  std::string d = common::mail::normalize_domain(name);
  if (!common::mail::valid_domain(d) || d.find('.') == std::string::npos) {
    throw std::invalid_argument("'" + name + "' is not a domain name");
  }
  return d;
}

}  // namespace

dkim::KeyStore load_signing_keys(const std::string& path) {
  if (path.empty()) return dkim::KeyStore();
  // Only the keys: the daemon's other settings (hop secret, actions) are not ours to judge.
  return dkim::KeyStore(dkim::read_options_file(path));
}

Targets select_targets(const dkim::KeyStore& store, const std::vector<std::string>& domains) {
  Targets out;
  auto inventory = store.inventory();
  auto target_for = [&](const std::string& domain) -> Target& {
    for (auto& t : out.domains) {
      if (t.domain == domain) return t;
    }
    out.domains.push_back({domain, {}});
    return out.domains.back();
  };
  auto add_key = [](Target& t, const dkim::SigningKey& k) {
    bool dup = std::any_of(t.keys.begin(), t.keys.end(),
                           [&](const dkim::SigningKey& o) { return o.selector == k.selector; });
    if (!dup) t.keys.push_back(k);
  };
  if (domains.empty()) {
    for (const auto& k : inventory.keys) add_key(target_for(k.domain), k);
    out.notes = inventory.unnamed;
    return out;
  }
  for (const auto& name : domains) {
    Target& t = target_for(normalized_domain(name));
    for (const auto& k : inventory.keys) {
      if (k.domain == t.domain) add_key(t, k);
    }
    for (const auto& k : store.keys_for("postmaster@" + t.domain)) {
      if (k.domain == t.domain) add_key(t, k);
    }
    if (t.keys.empty() && !store.empty()) {
      out.notes.push_back(t.domain + ": mxguard-dkim has no key for it; DKIM not checked");
    }
  }
  return out;
}

std::vector<Check> check_domain(common::dns::Resolver& resolver, const Target& target,
                                const Options& options, const dmarc::OrgDomains* org) {
  const std::string& domain = target.domain;
  std::vector<Check> checks;
  checks.push_back(
      judge_spf(domain, lookup_spf(resolver, domain, options.sending_ip), options.sending_ip));
  for (const auto& k : target.keys) {
    auto key_check = dkim::check_published_key(resolver, domain, k.selector, *k.key);
    checks.push_back(judge_dkim(domain, k.selector, k.path, *k.key, key_check));
  }
  std::string rua = options.dmarc_rua.empty() ? "postmaster@" + domain : options.dmarc_rua;
  checks.push_back(judge_dmarc(domain, lookup_dmarc(resolver, domain, org), rua));
  std::vector<std::string> notes;
  auto mx = judge_mx(domain, lookup_mx(resolver, domain, notes), options.mx);
  mx.notes.insert(mx.notes.end(), notes.begin(), notes.end());
  checks.push_back(std::move(mx));
  return checks;
}

int run(const Options& options, const std::vector<std::string>& domains, std::ostream& out,
        std::ostream& err) {
  Report report;
  try {
    dkim::KeyStore store = load_signing_keys(options.dkim_config);
    Targets targets = select_targets(store, domains);
    if (targets.domains.empty()) {
      err << "mxguard-dnscheck: fatal: no domains to check: "
          << (options.dkim_config.empty() ? "no dkim-config"
                                          : options.dkim_config + " names no signing key")
          << "; name the domains as arguments\n";
      return kExitUsage;
    }
    std::unique_ptr<dmarc::OrgDomains> org;
    if (!options.public_suffix_list.empty()) {
      org = std::make_unique<dmarc::OrgDomains>(options.public_suffix_list);
    }
    common::dns::Resolver resolver(options.dns);
    report.notes = targets.notes;
    for (const auto& t : targets.domains) {
      auto checks = check_domain(resolver, t, options, org.get());
      report.checks.insert(report.checks.end(), checks.begin(), checks.end());
    }
  } catch (const std::exception& ex) {
    err << "mxguard-dnscheck: fatal: " << ex.what() << "\n";
    return kExitUsage;
  }
  if (options.json) {
    print_json(report, out);
  } else {
    print_text(report, out);
  }
  return exit_code(report);
}

}  // namespace mxguard::milter::dnscheck
