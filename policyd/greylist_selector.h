// Selective greylisting: whether one request is greylisted at all, decided before the
// greylist triplet is looked at. `greylist-mode = all` greylists everyone (postgrey's
// behaviour, the default), `never` no one, `suspicious` only clients for which one of the
// configured conditions holds (a DNSBL listing, an SPF result, a HELO that is not a domain).
// A DNSWL listing or an SPF pass for a trusted domain skips greylisting in modes all and
// suspicious. The decision is a pure function of typed inputs (no DNS, no Redis), so every
// combination is unit-tested; the policy service gathers the inputs and applies the result.
// Must never reject or defer anything itself: its only outcomes are "greylist as usual" and
// "skip greylisting".
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/spf/spf.h"
#include "policyd/dns_lists.h"

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::policyd {

enum class GreylistMode { kAll, kSuspicious, kNever };

// Conditions that make a client suspicious (greylist-suspicious-when).
enum class Suspicion : std::size_t {
  kDnsbl,         // listed on a greylist-dnsbl-sites list
  kSpfFail,       // the MAIL FROM result (HELO's for the null sender) is fail
  kSpfSoftfail,   // … softfail
  kSpfNone,       // … none (no SPF record)
  kSpfNeutral,    // … neutral (not in the default set)
  kSpfPermerror,  // … permerror (not in the default set)
  kSpfTemperror,  // … temperror (not in the default set)
  kHeloNotFqdn,   // HELO empty, an address (literal or bare), or a single label
  kCount
};
using SuspicionSet = std::bitset<static_cast<std::size_t>(Suspicion::kCount)>;
std::string_view suspicion_name(Suspicion s);  // "dnsbl", "spf-fail", …, "helo-not-fqdn"

// The options as configured (strings and lists); parse() turns them into a SelectionPolicy.
struct SelectionOptions {
  std::string mode = "all";  // all | suspicious | never
  std::vector<std::string> suspicious_when{"dnsbl", "spf-fail", "spf-softfail", "spf-none",
                                           "helo-not-fqdn"};
  std::vector<DnsListSite> dnsbl_sites;
  std::vector<DnsListSite> dnswl_sites;
  // An SPF pass of the MAIL FROM domain (or a subdomain) of one of these skips greylisting.
  std::vector<std::string> trust_spf_pass_domains;

  void bind(common::config::Binder& b);
  // Throws config::OptionError; `spf_before_greylist`: checks runs spf before greylist.
  void validate(bool spf_before_greylist) const;
};

// The options in typed form, parsed once per (re)load.
struct SelectionPolicy {
  GreylistMode mode = GreylistMode::kAll;
  SuspicionSet when;
  std::vector<DnsListSite> dnsbl;  // consulted only in suspicious mode with `dnsbl` in `when`
  std::vector<DnsListSite> dnswl;  // consulted in modes all and suspicious
  std::vector<std::string> trusted_domains;  // lower case, no trailing dot

  // Whether anything may differ from plain greylisting of every client; when not, the
  // request flow and its log line are exactly those of before selective greylisting.
  bool active() const;
  // Which lists this policy needs for a request.
  bool wants_dnsbl() const;
  bool wants_dnswl() const;
};
// Throws config::OptionError naming the option.
SelectionPolicy parse_selection(const SelectionOptions& o);

// What SPF said about the identity that stands for MAIL FROM (RFC 7208 §2.4: the HELO
// identity for the null sender). kNotChecked: SPF is not in `checks`, the client is in
// spf-skip-addresses / spf-whitelist / passed spf-domain-whitelist, or MAIL FROM is no-check.
enum class SpfInput {
  kNotChecked,
  kPass,
  kFail,
  kSoftfail,
  kNeutral,
  kNone,
  kTemperror,
  kPermerror
};
SpfInput spf_input(std::optional<common::spf::Result> r);

struct SelectionInputs {
  SpfInput spf = SpfInput::kNotChecked;
  std::string spf_pass_domain;  // the MAIL FROM domain when spf is kPass for it, else empty
  std::string helo;             // helo_name as Postfix sent it
  ListHits lists;               // first listing zone of each kind (lists not consulted: none)
};

enum class SelectionReason {
  kModeAll,         // applied: greylist-mode = all
  kModeNever,       // skipped: greylist-mode = never
  kDnswl,           // skipped: DNSWL listing (detail: zone)
  kTrustedSpfPass,  // skipped: SPF pass for a trusted domain (detail: domain)
  kNotSuspicious,   // skipped: suspicious mode, no condition holds
  kSuspicious,      // applied: suspicious mode, `condition` holds (detail: zone for dnsbl)
};

struct Selection {
  bool greylist = true;
  SelectionReason reason = SelectionReason::kModeAll;
  Suspicion condition = Suspicion::kCount;  // for kSuspicious
  std::string detail;                       // zone or domain, else empty
  // For the log and metrics: "dnswl:wl.example", "dnsbl:zen.example", "spf-softfail",
  // "not-suspicious", "trusted-spf-pass:example.org", "mode-all", "mode-never".
  std::string label() const;
  std::string_view reason_name() const;  // label() without ":detail"
};

Selection select_greylisting(const SelectionPolicy& policy, const SelectionInputs& in);

// A HELO name that is a fully qualified domain: at least two labels, not an address literal
// or a bare address, last label not all digits.
bool helo_is_fqdn(std::string_view helo);

}  // namespace mxguard::policyd
