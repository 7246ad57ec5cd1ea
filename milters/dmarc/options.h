// mxguard-dmarc's options: the only place their defaults live (docs/mxguard-dmarc.md is
// checked against --dump-config). Must never accept a configuration it cannot serve with: the
// public suffix list is loaded by validate(), so --check-config catches a missing one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/authres/seal.h"
#include "common/config/config.h"
#include "common/daemon/daemon.h"
#include "common/dns/options.h"
#include "common/milter/engine_options.h"
#include "common/redis/options.h"

namespace mxguard::milter::dmarc {

// The option values a message's decision switches on (decision.h). Each parse throws
// std::invalid_argument("expected a|b|c"), the message validate() reports.
enum class QuarantineAction { kHold, kHeader, kAccept };  // --quarantine-action
enum class TemperrorAction { kAccept, kTempfail };        // --on-temperror
enum class BadFromAction { kAccept, kReject };            // --on-bad-from
enum class MultiFromAction { kReject, kEvaluate };        // --multi-from
QuarantineAction parse_quarantine_action(std::string_view text);
TemperrorAction parse_temperror_action(std::string_view text);
BadFromAction parse_bad_from_action(std::string_view text);
MultiFromAction parse_multi_from_action(std::string_view text);

struct Options {
  common::daemon::DaemonOptions daemon{.listen = "inet:127.0.0.1:8893"};
  common::dns::ResolverOptions dns;
  common::redis::ClientOptions redis;
  std::string authserv_id;
  // Shared with the suite's other daemons: seals the A-R headers written at this hop
  // (common/authres/seal.h). Missing default file: headers are not sealed (a warning).
  std::string hop_secret_file =
      common::authres::kDefaultHopSecretFile;  // empty: this host's name (must match
                                               // mxguard-dkim's)
  std::string public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dafsa";

  bool enforce = true;  // no: monitor mode, headers only
  std::string reject_text =
      "Unauthenticated email from %d is not accepted due to the domain's DMARC policy";
  std::string quarantine_action = "hold";  // hold|header|accept
  std::string quarantine_header = "X-Spam: Yes";
  std::string on_temperror = "accept";  // accept|tempfail
  std::string on_bad_from = "reject";   // accept|reject: no/empty/unparsable From
  std::string multi_from = "reject";    // reject|evaluate (same-domain lists are evaluated)
  unsigned max_from_addresses = 50;
  bool ignore_authenticated = true;
  std::vector<std::string> trusted_networks{"127.0.0.0/8", "::1"};
  std::vector<std::string> never_reject_domains;
  // ARC sealers (RFC 8617) whose intact chain may override a DMARC fail; empty: ARC is ignored.
  std::vector<std::string> trusted_arc_sealers;
  bool spf_self_check = true;
  common::config::Duration spf_timeout{std::chrono::seconds(10)};

  bool aggregate_reports = true;  // record aggregates in Redis
  common::config::Duration report_interval{std::chrono::hours(24)};
  common::config::Duration report_retention{std::chrono::hours(24 * 7)};
  common::config::Duration report_delay{std::chrono::minutes(15)};

  // Read by mxguard-dmarc-report (same file): who we are in the reports, how they go out.
  std::string report_org_name;  // empty: this host's name
  std::string report_email;     // empty: noreply-dmarc@<host name>
  std::string report_extra_contact;
  std::string report_sendmail = "/usr/sbin/sendmail";

  std::string on_internal_error = "tempfail";
  common::config::Duration milter_timeout{std::chrono::seconds(300)};
  common::milter::EngineOptions engine;  // milter-engine, milter-threads

  // The action strings above as enums, parsed once by validate(): every start and reload runs
  // it before the Options are used, and a caller that builds Options in code must run it too.
  // The strings stay what the binder and --dump-config read and write. mutable because
  // validate() is const: this is a cache of the strings (only tests set it directly).
  struct Parsed {
    QuarantineAction quarantine_action = QuarantineAction::kHold;
    TemperrorAction on_temperror = TemperrorAction::kAccept;
    BadFromAction on_bad_from = BadFromAction::kReject;
    MultiFromAction multi_from = MultiFromAction::kReject;
  };
  mutable Parsed parsed;

  void bind(common::config::Binder& b);
  // Checks values, loads the public suffix list and fills `parsed` (throws config::OptionError
  // naming the option).
  void validate() const;
};

}  // namespace mxguard::milter::dmarc
