// mxguard-dkim's options: the only place their defaults live (docs/mxguard-dkim.md is checked
// against --dump-config). Must never accept a configuration it cannot serve with: key files and
// tables are loaded and checked by validate(), so --check-config catches a bad key.
#pragma once

#include <string>
#include <vector>

#include "common/authres/seal.h"
#include "common/config/config.h"
#include "common/daemon/daemon.h"
#include "common/dns/options.h"
#include "common/milter/engine_options.h"

namespace mxguard::milter::dkim {

// What to do with a message when something goes wrong (OpenDKIM's On-* settings).
enum class FailureAction { kAccept, kTempfail, kReject, kQuarantine };
FailureAction parse_failure_action(std::string_view text);  // throws std::invalid_argument
std::string_view failure_action_name(FailureAction a);

// Which messages mxguard-dkim adds an ARC set to (RFC 8617 sealing; only mail it signs).
//   kNone: never. kForwarded: a message that arrived with an ARC header field or an
//   Authentication-Results header field (any authserv-id): mail that was received elsewhere
//   and is passed on (a list, an alias, a forwarding rule). kAll: every message it signs.
enum class ArcSealMode { kNone, kForwarded, kAll };
ArcSealMode parse_arc_seal_mode(std::string_view text);  // throws std::invalid_argument
std::string_view arc_seal_mode_name(ArcSealMode m);

struct Options {
  // A unix socket by default: on a TCP port any local user could connect and claim
  // {auth_authen}, which turns signing on. The directory is the one the package makes, which
  // Postfix (chrooted) reaches as unix:mxguard/dkim.sock.
  common::daemon::DaemonOptions daemon{.listen = "unix:/var/spool/postfix/mxguard/dkim.sock"};
  common::dns::ResolverOptions dns;
  std::string authserv_id;
  // Shared with the suite's other daemons: seals the A-R headers written at this hop
  // (common/authres/seal.h). Missing default file: headers are not sealed (a warning).
  std::string hop_secret_file = common::authres::kDefaultHopSecretFile;  // empty: this host's name

  // Simple key selection: every (selector[i], key-file[i]) pair signs mail from every domain
  // in `domain`; several pairs give several signatures (RSA + Ed25519 dual signing).
  std::vector<std::string> domain;
  std::vector<std::string> selector;
  std::vector<std::string> key_file;
  // Per-domain keys, "domain:selector:/path/to/key"; repeat a domain for dual signing.
  std::vector<std::string> signing_key;
  // OpenDKIM's KeyTable and SigningTable (a SigningTable may start with "refile:").
  std::string key_table;
  std::string signing_table;

  std::vector<std::string> internal_hosts{"127.0.0.1", "::1"};
  // Empty: libopendkim's RFC 6376 §5.4.1 list (every header but the ones it should not sign).
  std::vector<std::string> sign_headers;
  std::vector<std::string> oversign_headers{"from",
                                            "to",
                                            "cc",
                                            "subject",
                                            "date",
                                            "reply-to",
                                            "message-id",
                                            "in-reply-to",
                                            "references",
                                            "sender",
                                            "mime-version",
                                            "content-type",
                                            "content-transfer-encoding"};
  bool sign_body_length = false;  // l= (lets anyone append to the body: off unless asked)
  common::config::Duration signature_ttl{std::chrono::milliseconds(0)};  // x=; 0: none

  unsigned max_signatures_to_verify = 5;
  unsigned minimum_key_bits = 1024;
  bool allow_sha1 = false;

  // ARC (RFC 8617, milters/arc/). Verification adds arc=… to our Authentication-Results.
  bool arc_verify = true;
  std::string arc_seal = "none";  // none|forwarded|all (ArcSealMode)
  // "domain:selector:/path/to/key" for every seal; empty: the DKIM key(s) that sign the
  // message (the first one), so the seal is the From domain's.
  std::string arc_seal_key;
  // AMS h=; only names present in the message are signed (every instance of them).
  std::vector<std::string> arc_seal_headers{
      "from",           "to",           "cc",           "subject",
      "date",           "message-id",   "reply-to",     "in-reply-to",
      "references",     "mime-version", "content-type", "content-transfer-encoding",
      "dkim-signature", "list-id"};

  std::string on_dns_error = "accept";         // key lookup timed out / SERVFAIL (temperror)
  std::string on_bad_signature = "accept";     // dkim=fail / permerror
  std::string on_key_not_found = "accept";     // no key record for the selector
  std::string on_signing_error = "tempfail";   // we should sign but cannot
  std::string on_internal_error = "tempfail";  // an exception in a callback
  common::config::Duration milter_timeout{std::chrono::seconds(300)};
  common::milter::EngineOptions engine;  // milter-engine, milter-threads

  void bind(common::config::Binder& b);
  // Checks values and loads every key and table (throws config::OptionError naming the option).
  void validate() const;

  FailureAction dns_error_action() const { return parse_failure_action(on_dns_error); }
  FailureAction bad_signature_action() const { return parse_failure_action(on_bad_signature); }
  FailureAction key_not_found_action() const { return parse_failure_action(on_key_not_found); }
  FailureAction signing_error_action() const { return parse_failure_action(on_signing_error); }
  ArcSealMode arc_seal_mode() const { return parse_arc_seal_mode(arc_seal); }
};

inline constexpr const char* kDefaultConfigFile = "/etc/mxguard/dkim.conf";

// mxguard-dkim's options from its configuration file alone, read as the daemon reads it
// (drop-ins FILE.d/*.conf included) but without validate(): for the tools that work on the
// daemon's keys and tables (mxguard-keygen rotate, mxguard-dnscheck), which load what they need
// themselves. The default file may be missing (built-in defaults, no keys); any other must
// exist. Throws config::ConfigError naming file:line.
Options read_options_file(const std::string& path);

}  // namespace mxguard::milter::dkim
