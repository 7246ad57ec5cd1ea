// SPF as a policy: what mxguard-policyd does with the HELO and MAIL FROM results of
// common/spf — reject, defer or accept with Received-SPF (RFC 7208 §9.1) and/or
// Authentication-Results (RFC 8601) headers — with pypolicyd-spf's policy options mapped.
// Pure logic (no DNS, no Redis), so every policy is unit-tested.
// Must never reject on a DNS failure unless --spf-temperror-defer asks to defer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/authres/seal.h"
#include "common/config/units.h"
#include "common/net/ip.h"
#include "common/spf/spf.h"

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::policyd {

struct SpfOptions {
  // pypolicyd-spf HELO_reject: fail | softfail | not-pass | null | no | no-check
  std::string helo_reject = "fail";
  // pypolicyd-spf Mail_From_reject: fail | softfail | no | no-check
  std::string mail_from_reject = "fail";
  bool permerror_reject = false;                                  // PermError_reject
  bool temperror_defer = false;                                   // TempError_Defer
  std::vector<std::string> skip_addresses{"127.0.0.0/8", "::1"};  // skip_addresses
  std::vector<std::string> whitelist;                             // Whitelist (CIDR)
  // Domain_Whitelist: clients that pass SPF for one of these domains are not checked.
  std::vector<std::string> domain_whitelist;
  std::string header = "received-spf";  // received-spf | authentication-results | both | none
  bool hide_receiver = true;            // Hide_Receiver
  common::config::Duration timeout{std::chrono::seconds(10)};  // whole check, all lookups
  std::string authserv_id;
  // Seals the A-R header (spf-header = authentication-results) so mxguard-dkim and -dmarc
  // keep it (common/authres/seal.h); shared with them.
  std::string hop_secret_file =
      common::authres::kDefaultHopSecretFile;  // A-R authserv-id and Received-SPF receiver; empty:
                                               // host name

  void bind(common::config::Binder& b);
  void validate() const;  // throws config::OptionError
};

// What one message's SPF checks found. An identity not checked is nullopt.
struct SpfResults {
  std::optional<common::spf::Outcome> helo;
  std::optional<common::spf::Outcome> mail_from;
  std::string helo_name;
  std::string sender;  // the envelope sender as Postfix sent it (may be empty)
  common::net::IpAddress client;
  std::string whitelisted_by;  // a --spf-domain-whitelist domain the client passed SPF for
};

struct SpfVerdict {
  std::string action;                // non-empty: reject/defer now (no further checks)
  std::vector<std::string> headers;  // complete header lines to prepend when accepted
  std::string summary;               // for the log: "helo=pass mailfrom=fail"
  // The MAIL FROM identity passed: the domain (for pool-tolerant greylisting), else empty.
  std::string passed_domain;
  // The result that stands for MAIL FROM (the HELO result for the null sender, RFC 7208
  // §2.4); nullopt when neither was checked or a spf-domain-whitelist domain passed.
  std::optional<common::spf::Result> result;
};

SpfVerdict decide(const SpfOptions& o, const SpfResults& r, const std::string& receiver);

// RFC 7208 §9.1 Received-SPF value (without the field name) for one identity.
std::string received_spf(const common::spf::Outcome& outcome, const SpfResults& r,
                         const std::string& identity, const std::string& receiver,
                         bool hide_receiver);

// The domain part of an address ("" when there is none).
std::string domain_of(const std::string& address);

}  // namespace mxguard::policyd
