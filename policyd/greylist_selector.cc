// Implementation of selective greylisting's decision (see greylist_selector.h).
#include "policyd/greylist_selector.h"

#include <array>

#include "common/config/config.h"
#include "common/net/ip.h"
#include "common/util/strings.h"

namespace mxguard::policyd {
namespace {

using common::config::OptionError;

constexpr std::array<std::string_view, static_cast<std::size_t>(Suspicion::kCount)> kNames{
    "dnsbl",       "spf-fail",      "spf-softfail",  "spf-none",
    "spf-neutral", "spf-permerror", "spf-temperror", "helo-not-fqdn"};

bool is_spf_condition(Suspicion s) {
  return s != Suspicion::kDnsbl && s != Suspicion::kHeloNotFqdn;
}

// The condition an SPF result fulfils, if any.
std::optional<Suspicion> spf_condition(SpfInput spf) {
  switch (spf) {
    case SpfInput::kFail:
      return Suspicion::kSpfFail;
    case SpfInput::kSoftfail:
      return Suspicion::kSpfSoftfail;
    case SpfInput::kNone:
      return Suspicion::kSpfNone;
    case SpfInput::kNeutral:
      return Suspicion::kSpfNeutral;
    case SpfInput::kPermerror:
      return Suspicion::kSpfPermerror;
    case SpfInput::kTemperror:
      return Suspicion::kSpfTemperror;
    case SpfInput::kPass:
    case SpfInput::kNotChecked:
      return std::nullopt;
  }
  return std::nullopt;
}

GreylistMode parse_mode(const std::string& mode) {
  if (mode == "all") return GreylistMode::kAll;
  if (mode == "suspicious") return GreylistMode::kSuspicious;
  if (mode == "never") return GreylistMode::kNever;
  throw OptionError("greylist-mode", "expected all, suspicious or never, not '" + mode + "'");
}

std::string normalize_domain(const std::string& d) {
  std::string out = common::util::lower(d);
  if (!out.empty() && out.back() == '.') out.pop_back();
  if (!out.empty() && out.front() == '.') out.erase(0, 1);
  return out;
}

bool in_domain(std::string_view domain, std::string_view trusted) {
  return domain == trusted || (domain.size() > trusted.size() && domain.ends_with(trusted) &&
                               domain[domain.size() - trusted.size() - 1] == '.');
}

}  // namespace

std::string_view suspicion_name(Suspicion s) {
  auto i = static_cast<std::size_t>(s);
  return i < kNames.size() ? kNames[i] : "none";
}

void SelectionOptions::bind(common::config::Binder& b) {
  b.add("greylist-mode", mode,
        "whom to greylist: all (postgrey), suspicious (only when greylist-suspicious-when holds), "
        "never");
  b.add("greylist-suspicious-when", suspicious_when,
        "with greylist-mode = suspicious, greylist when any of these holds: dnsbl, spf-fail, "
        "spf-softfail, spf-none, spf-neutral, spf-permerror, spf-temperror, helo-not-fqdn");
  b.add("greylist-dnsbl-sites", dnsbl_sites,
        "DNS block lists whose listing makes a client suspicious: zone[=127.0.0.N filter], "
        "e.g. zen.example=127.0.0.[2..11]");
  b.add("greylist-dnswl-sites", dnswl_sites,
        "DNS allow lists whose listing skips greylisting (modes all and suspicious): "
        "zone[=filter]");
  b.add("greylist-trust-spf-pass-domains", trust_spf_pass_domains,
        "an SPF pass for a MAIL FROM domain of these (or a subdomain) skips greylisting "
        "(modes all and suspicious; needs checks = spf, greylist)");
}

void SelectionOptions::validate(bool spf_before_greylist) const {
  SelectionPolicy p = parse_selection(*this);
  if (p.mode == GreylistMode::kSuspicious && !spf_before_greylist) {
    for (std::size_t i = 0; i < p.when.size(); ++i) {
      if (p.when.test(i) && is_spf_condition(static_cast<Suspicion>(i))) {
        // Without an SPF result the condition could never hold (or would always have to be
        // guessed): say so at start-up instead of greylisting differently than configured.
        throw OptionError("greylist-suspicious-when",
                          std::string(kNames[i]) +
                              " needs checks = spf, greylist (SPF before greylisting); add spf "
                              "to checks or drop the spf-* conditions");
      }
    }
  }
  if (!p.trusted_domains.empty() && !spf_before_greylist) {
    throw OptionError("greylist-trust-spf-pass-domains", "needs checks = spf, greylist");
  }
}

SelectionPolicy parse_selection(const SelectionOptions& o) {
  SelectionPolicy p;
  p.mode = parse_mode(o.mode);
  for (const auto& name : o.suspicious_when) {
    bool found = false;
    for (std::size_t i = 0; i < kNames.size(); ++i) {
      if (name == kNames[i]) {
        p.when.set(i);
        found = true;
      }
    }
    if (!found) {
      throw OptionError("greylist-suspicious-when",
                        "unknown condition '" + name +
                            "' (known: dnsbl, spf-fail, spf-softfail, spf-none, spf-neutral, "
                            "spf-permerror, spf-temperror, helo-not-fqdn)");
    }
  }
  if (p.mode == GreylistMode::kSuspicious && p.when.none()) {
    throw OptionError("greylist-suspicious-when",
                      "name at least one condition (or set greylist-mode = never)");
  }
  p.dnsbl = o.dnsbl_sites;
  p.dnswl = o.dnswl_sites;
  for (const auto& d : o.trust_spf_pass_domains) {
    std::string n = normalize_domain(d);
    if (n.empty() || n.find('.') == std::string::npos || n.find('@') != std::string::npos ||
        n.find('/') != std::string::npos) {
      throw OptionError("greylist-trust-spf-pass-domains",
                        "'" + d + "' is not a domain with at least two labels");
    }
    p.trusted_domains.push_back(std::move(n));
  }
  return p;
}

bool SelectionPolicy::active() const {
  return mode != GreylistMode::kAll || !dnswl.empty() || !trusted_domains.empty();
}

bool SelectionPolicy::wants_dnsbl() const {
  return mode == GreylistMode::kSuspicious &&
         when.test(static_cast<std::size_t>(Suspicion::kDnsbl)) && !dnsbl.empty();
}

bool SelectionPolicy::wants_dnswl() const { return mode != GreylistMode::kNever && !dnswl.empty(); }

SpfInput spf_input(std::optional<common::spf::Result> r) {
  if (!r) return SpfInput::kNotChecked;
  using common::spf::Result;
  switch (*r) {
    case Result::kPass:
      return SpfInput::kPass;
    case Result::kFail:
      return SpfInput::kFail;
    case Result::kSoftfail:
      return SpfInput::kSoftfail;
    case Result::kNeutral:
      return SpfInput::kNeutral;
    case Result::kNone:
      return SpfInput::kNone;
    case Result::kTemperror:
      return SpfInput::kTemperror;
    case Result::kPermerror:
      return SpfInput::kPermerror;
  }
  return SpfInput::kNotChecked;
}

bool helo_is_fqdn(std::string_view helo) {
  if (!helo.empty() && helo.back() == '.') helo.remove_suffix(1);
  if (helo.empty() || helo.front() == '[') return false;
  if (common::net::IpAddress::parse(helo)) return false;  // a bare address, not a name
  auto dot = helo.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  std::string_view last = helo.substr(dot + 1);
  if (last.empty()) return false;
  bool digits = true;
  for (char c : last) digits = digits && c >= '0' && c <= '9';
  return !digits;
}

Selection select_greylisting(const SelectionPolicy& policy, const SelectionInputs& in) {
  Selection s;
  if (policy.mode == GreylistMode::kNever) {
    s.greylist = false;
    s.reason = SelectionReason::kModeNever;
    return s;
  }
  // Allow-listing wins over every suspicion: the admin chose to trust that list or domain.
  if (in.lists.dnswl) {
    s.greylist = false;
    s.reason = SelectionReason::kDnswl;
    s.detail = *in.lists.dnswl;
    return s;
  }
  if (in.spf == SpfInput::kPass && !in.spf_pass_domain.empty()) {
    std::string domain = normalize_domain(in.spf_pass_domain);
    for (const auto& t : policy.trusted_domains) {
      if (in_domain(domain, t)) {
        s.greylist = false;
        s.reason = SelectionReason::kTrustedSpfPass;
        s.detail = t;
        return s;
      }
    }
  }
  if (policy.mode == GreylistMode::kAll) return s;  // greylist, reason mode-all
  auto holds = [&](Suspicion c) { return policy.when.test(static_cast<std::size_t>(c)); };
  s.reason = SelectionReason::kSuspicious;
  if (holds(Suspicion::kDnsbl) && in.lists.dnsbl) {
    s.condition = Suspicion::kDnsbl;
    s.detail = *in.lists.dnsbl;
    return s;
  }
  if (auto c = spf_condition(in.spf); c && holds(*c)) {
    s.condition = *c;
    return s;
  }
  if (holds(Suspicion::kHeloNotFqdn) && !helo_is_fqdn(in.helo)) {
    s.condition = Suspicion::kHeloNotFqdn;
    return s;
  }
  s.greylist = false;
  s.reason = SelectionReason::kNotSuspicious;
  return s;
}

std::string_view Selection::reason_name() const {
  switch (reason) {
    case SelectionReason::kModeAll:
      return "mode-all";
    case SelectionReason::kModeNever:
      return "mode-never";
    case SelectionReason::kDnswl:
      return "dnswl";
    case SelectionReason::kTrustedSpfPass:
      return "trusted-spf-pass";
    case SelectionReason::kNotSuspicious:
      return "not-suspicious";
    case SelectionReason::kSuspicious:
      return suspicion_name(condition);
  }
  return "mode-all";
}

std::string Selection::label() const {
  std::string out(reason_name());
  if (!detail.empty()) out += ":" + detail;
  return out;
}

}  // namespace mxguard::policyd
