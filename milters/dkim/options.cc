// Binding and validation of mxguard-dkim's options (see options.h).
#include "milters/dkim/options.h"

#include "common/config/checks.h"
#include "common/net/ip.h"
#include "common/util/strings.h"
#include "milters/dkim/keys.h"

namespace mxguard::milter::dkim {

FailureAction parse_failure_action(std::string_view text) {
  if (text == "accept") return FailureAction::kAccept;
  if (text == "tempfail") return FailureAction::kTempfail;
  if (text == "reject") return FailureAction::kReject;
  if (text == "quarantine") return FailureAction::kQuarantine;
  throw std::invalid_argument("expected accept, tempfail, reject or quarantine");
}

std::string_view failure_action_name(FailureAction a) {
  switch (a) {
    case FailureAction::kAccept:
      return "accept";
    case FailureAction::kTempfail:
      return "tempfail";
    case FailureAction::kReject:
      return "reject";
    case FailureAction::kQuarantine:
      return "quarantine";
  }
  return "tempfail";
}

ArcSealMode parse_arc_seal_mode(std::string_view text) {
  if (text == "none") return ArcSealMode::kNone;
  if (text == "forwarded") return ArcSealMode::kForwarded;
  if (text == "all") return ArcSealMode::kAll;
  throw std::invalid_argument("expected none, forwarded or all");
}

std::string_view arc_seal_mode_name(ArcSealMode m) {
  switch (m) {
    case ArcSealMode::kNone:
      return "none";
    case ArcSealMode::kForwarded:
      return "forwarded";
    case ArcSealMode::kAll:
      return "all";
  }
  return "none";
}

void Options::bind(common::config::Binder& b) {
  daemon.bind(b);
  common::dns::bind_options(b, dns);
  b.add("authserv-id", authserv_id, "authserv-id of Authentication-Results (empty: host name)");
  b.add("hop-secret-file", hop_secret_file,
        "file with the secret this host's mxguard daemons share to seal the Authentication-Results "
        "headers they write (a missing default file: no seals, and mxguard-dmarc cannot use "
        "mxguard-dkim's results)");
  b.add("domain", domain, "domains to sign for with every selector/key-file pair");
  b.add("selector", selector, "selectors, one per key-file, used for every --domain");
  b.add("key-file", key_file,
        "private keys (PEM, RSA 1024-4096 bits or Ed25519), one per selector");
  b.add("signing-key", signing_key, "per-domain keys as domain:selector:/path/to/key");
  b.add("key-table", key_table, "OpenDKIM KeyTable file (keyname domain:selector:/path)");
  b.add("signing-table", signing_table, "OpenDKIM SigningTable file, refile:PATH for wildcards");
  b.add("internal-hosts", internal_hosts, "clients whose mail is signed, not verified");
  b.add("sign-headers", sign_headers, "headers to sign (empty: RFC 6376 5.4.1 default list)");
  b.add("oversign-headers", oversign_headers,
        "headers signed once more than present, so none can be added later");
  b.add("sign-body-length", sign_body_length, "add l= (body length) to signatures");
  b.add("signature-ttl", signature_ttl, "signature expiry x= after signing (0: none)");
  b.add("max-signatures-to-verify", max_signatures_to_verify,
        "DKIM-Signature headers verified per message; later ones are ignored");
  b.add("minimum-key-bits", minimum_key_bits, "RSA keys shorter than this fail verification");
  b.add("allow-sha1", allow_sha1, "accept rsa-sha1 signatures (RFC 8301 forbids them)");
  b.add("arc-verify", arc_verify,
        "verify ARC chains (RFC 8617) of mail we verify: arc=pass|fail|none in our "
        "Authentication-Results");
  b.add("arc-seal", arc_seal,
        "add an ARC set to mail we sign: none, forwarded (it arrived with ARC or "
        "Authentication-Results header fields) or all");
  b.add("arc-seal-key", arc_seal_key,
        "domain:selector:/path/to/key for ARC seals (empty: the message's DKIM signing key)");
  b.add("arc-seal-headers", arc_seal_headers,
        "header fields the ARC-Message-Signature covers (those present)");
  b.add("on-dns-error", on_dns_error,
        "key lookup timeout/SERVFAIL: accept|tempfail|reject|quarantine");
  b.add("on-bad-signature", on_bad_signature,
        "failed or broken signature: accept|tempfail|reject|quarantine");
  b.add("on-key-not-found", on_key_not_found,
        "no key record for a signature: accept|tempfail|reject|quarantine");
  b.add("on-signing-error", on_signing_error,
        "a message we should sign but cannot: accept|tempfail|reject|quarantine");
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

  common::config::require_networks("internal-hosts", internal_hosts);
  for (auto [name, value] :
       {std::pair{"on-dns-error", &on_dns_error}, std::pair{"on-bad-signature", &on_bad_signature},
        std::pair{"on-key-not-found", &on_key_not_found},
        std::pair{"on-signing-error", &on_signing_error}}) {
    common::config::require_parses(name, *value, parse_failure_action);
  }
  common::config::require_parses("arc-seal", arc_seal, parse_arc_seal_mode);
  if (!arc_seal_key.empty()) {
    try {
      parse_arc_seal_key(arc_seal_key, daemon.user);
    } catch (const KeyError& ex) {
      throw OptionError("arc-seal-key", ex.what());
    }
  }
  {
    bool from = false;
    for (const auto& h : arc_seal_headers) {
      if (common::util::iequals(h, "arc-seal")) {
        throw OptionError("arc-seal-headers", "ARC-Seal must not be signed (RFC 8617 4.1.2)");
      }
      from |= common::util::iequals(h, "from");
    }
    if (!from) throw OptionError("arc-seal-headers", "must include from");
  }
  common::config::require_one_of("on-internal-error", on_internal_error,
                                 {"accept", "tempfail", "reject"});
  if (max_signatures_to_verify < 1 || max_signatures_to_verify > 100) {
    throw OptionError("max-signatures-to-verify", "1 to 100");
  }
  if (minimum_key_bits < 512 || minimum_key_bits > 4096) {
    throw OptionError("minimum-key-bits", "512 to 4096");
  }
  if (milter_timeout.value.count() < 1000) throw OptionError("milter-timeout", "at least 1s");
  engine.validate();
  if (signature_ttl.value.count() != 0 && signature_ttl.value.count() < 60000) {
    throw OptionError("signature-ttl", "0 (none) or at least 1m");
  }
  // Load every key and table now: a bad one is a configuration error, reported with its place.
  try {
    KeyStore store(*this);
  } catch (const KeyError& ex) {
    std::string what = ex.what();
    std::string option = "key-table";
    for (const char* o :
         {"selector", "domain", "key-file", "signing-key", "signing-table", "key-table"}) {
      if (what.rfind(std::string(o) + ":", 0) == 0) {
        option = o;
        what = what.substr(option.size() + 2);
        break;
      }
    }
    throw OptionError(option, what);
  }
}

Options read_options_file(const std::string& path) {
  Options o;
  common::config::Binder binder;
  o.bind(binder);
  common::config::ProgramInfo info{"mxguard-dkim", "", kDefaultConfigFile, ""};
  if (path == kDefaultConfigFile) {
    const char* argv[] = {"mxguard-dkim"};
    common::config::parse(info, binder, 1, argv, [] {});
  } else {
    const char* argv[] = {"mxguard-dkim", "-c", path.c_str()};
    common::config::parse(info, binder, 3, argv, [] {});
  }
  return o;
}

}  // namespace mxguard::milter::dkim
