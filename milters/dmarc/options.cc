// Binding and validation of mxguard-dmarc's options (see options.h).
#include "milters/dmarc/options.h"

#include <stdexcept>

#include "common/config/checks.h"
#include "common/mail/from.h"
#include "common/net/ip.h"
#include "milters/dmarc/orgdomain.h"

namespace mxguard::milter::dmarc {

using common::mail::normalize_domain;
using common::mail::valid_domain;

QuarantineAction parse_quarantine_action(std::string_view text) {
  if (text == "hold") return QuarantineAction::kHold;
  if (text == "header") return QuarantineAction::kHeader;
  if (text == "accept") return QuarantineAction::kAccept;
  throw std::invalid_argument("expected hold|header|accept");
}

TemperrorAction parse_temperror_action(std::string_view text) {
  if (text == "accept") return TemperrorAction::kAccept;
  if (text == "tempfail") return TemperrorAction::kTempfail;
  throw std::invalid_argument("expected accept|tempfail");
}

BadFromAction parse_bad_from_action(std::string_view text) {
  if (text == "accept") return BadFromAction::kAccept;
  if (text == "reject") return BadFromAction::kReject;
  throw std::invalid_argument("expected accept|reject");
}

MultiFromAction parse_multi_from_action(std::string_view text) {
  if (text == "reject") return MultiFromAction::kReject;
  if (text == "evaluate") return MultiFromAction::kEvaluate;
  throw std::invalid_argument("expected reject|evaluate");
}

void Options::bind(common::config::Binder& b) {
  daemon.bind(b);
  common::dns::bind_options(b, dns);
  common::redis::bind_options(b, redis);
  b.add("authserv-id", authserv_id,
        "authserv-id whose Authentication-Results we trust and extend (empty: host name)");
  b.add("hop-secret-file", hop_secret_file,
        "file with the secret this host's mxguard daemons share to seal the Authentication-Results "
        "headers they write (a missing default file: no seals, and mxguard-dmarc cannot use "
        "mxguard-dkim's results)");
  b.add("public-suffix-list", public_suffix_list, "Public Suffix List file (.dafsa or .dat)");
  b.add("enforce", enforce, "apply p=reject/quarantine (no: monitor mode, headers only)");
  b.add("reject-text", reject_text, "550 5.7.1 reply text for p=reject; %d is the From domain");
  b.add("quarantine-action", quarantine_action,
        "p=quarantine: hold (Postfix hold queue), header (add --quarantine-header) or accept");
  b.add("quarantine-header", quarantine_header, "header added by --quarantine-action header");
  b.add("on-temperror", on_temperror, "DNS failure during policy discovery: accept|tempfail");
  b.add("on-bad-from", on_bad_from, "missing, empty or unparsable From header: accept|reject");
  b.add("multi-from", multi_from,
        "several From domains: reject, or evaluate each (the strictest result applies)");
  b.add("max-from-addresses", max_from_addresses, "From headers with more addresses are bad");
  b.add("ignore-authenticated", ignore_authenticated, "skip SASL-authenticated clients");
  b.add("trusted-networks", trusted_networks, "clients whose mail is not evaluated");
  b.add("never-reject-domains", never_reject_domains,
        "forwarders and lists: mail from a verified identity in (or under) one of these domains "
        "(envelope sender with SPF pass, DKIM pass, or the client host name Postfix verified) "
        "is never rejected or held, only marked");
  b.add("trusted-arc-sealers", trusted_arc_sealers,
        "forwarders and lists whose ARC seal we trust: a DMARC fail is not rejected or held when "
        "mxguard-dkim found the message's ARC chain intact (arc=pass) and its newest seal is by "
        "one of these domains (or under one); empty: ARC never changes a disposition");
  b.add("spf-self-check", spf_self_check,
        "check SPF ourselves (MAIL FROM, HELO for the null sender); no: SPF never aligns");
  b.add("spf-timeout", spf_timeout, "budget of one SPF check (temperror past it)");
  b.add("aggregate-reports", aggregate_reports, "record aggregate report data in Redis");
  b.add("report-interval", report_interval, "aggregate report period (must match the reporter)");
  b.add("report-retention", report_retention,
        "how long unsent aggregate data stays in Redis after its period");
  b.add("report-delay", report_delay,
        "a period is reported this long after it ends (messages still in flight and other MX "
        "hosts' clocks land in it first)");
  b.add("report-org-name", report_org_name, "reports: org_name (empty: host name)");
  b.add("report-email", report_email,
        "reports: sender and contact address (empty: noreply-dmarc@host name)");
  b.add("report-extra-contact", report_extra_contact, "reports: extra_contact_info");
  b.add("report-sendmail", report_sendmail, "reports: sendmail(1) program that sends them");
  b.add("on-internal-error", on_internal_error, "an internal error: accept|tempfail|reject");
  b.add("milter-timeout", milter_timeout, "I/O timeout towards the MTA");
  engine.bind(b);
}

void Options::validate() const {
  using common::config::OptionError;
  daemon.validate();
  common::dns::validate_options(dns);
  try {
    common::authres::configured_hop_secret(hop_secret_file);
  } catch (const std::runtime_error& ex) {
    throw OptionError("hop-secret-file", ex.what());
  }

  common::redis::validate_options(redis);
  using common::config::require_parses;
  parsed.quarantine_action =
      require_parses("quarantine-action", quarantine_action, parse_quarantine_action);
  parsed.on_temperror = require_parses("on-temperror", on_temperror, parse_temperror_action);
  parsed.on_bad_from = require_parses("on-bad-from", on_bad_from, parse_bad_from_action);
  parsed.multi_from = require_parses("multi-from", multi_from, parse_multi_from_action);
  common::config::require_one_of("on-internal-error", on_internal_error,
                                 {"accept", "tempfail", "reject"});
  auto colon = quarantine_header.find(':');
  if (colon == std::string::npos || colon == 0 ||
      quarantine_header.find_first_of(" \t\r\n") < colon) {
    throw OptionError("quarantine-header", "expected 'Name: value'");
  }
  if (max_from_addresses < 1 || max_from_addresses > 1000) {
    throw OptionError("max-from-addresses", "1 to 1000");
  }
  common::config::require_networks("trusted-networks", trusted_networks);
  for (const auto& d : never_reject_domains) {
    if (!valid_domain(normalize_domain(d))) {
      throw OptionError("never-reject-domains", "not a domain: " + d);
    }
  }
  for (const auto& d : trusted_arc_sealers) {
    if (!valid_domain(normalize_domain(d))) {
      throw OptionError("trusted-arc-sealers", "not a domain: " + d);
    }
  }
  if (report_delay.value >= report_retention.value) {
    throw OptionError("report-delay", "must be shorter than report-retention");
  }
  if (report_interval.value < std::chrono::minutes(1) ||
      report_interval.value > std::chrono::hours(24 * 7)) {
    throw OptionError("report-interval", "1m to 7d");
  }
  if (spf_timeout.value < std::chrono::milliseconds(100)) {
    throw OptionError("spf-timeout", "at least 100ms");
  }
  if (milter_timeout.value.count() < 1000) throw OptionError("milter-timeout", "at least 1s");
  engine.validate();
  try {
    OrgDomains psl(public_suffix_list);
  } catch (const std::exception& ex) {
    throw OptionError("public-suffix-list", ex.what());
  }
}

}  // namespace mxguard::milter::dmarc
