// mxguard-dkim's milter glue: decides per message whether to sign (internal client, SASL
// login, or non-SMTP submission) or verify, streams headers and body into a Signer or
// Verifier, removes forged Authentication-Results claiming our authserv-id, adds the
// DKIM-Signature(s) or our one A-R header, and applies the --on-* failure actions with one
// decision log line per message. Must never send mail we should sign unsigned without a log
// line, and never let a DNS problem become anything but temperror plus --on-dns-error.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "common/daemon/daemon.h"
#include "common/dns/resolver.h"
#include "common/milter/engine_options.h"
#include "common/milter/milter.h"
#include "common/net/ip.h"
#include "milters/arc/crypto.h"
#include "milters/dkim/keys.h"
#include "milters/dkim/library.h"
#include "milters/dkim/options.h"
#include "milters/dkim/verifier.h"

namespace mxguard::milter::dkim {

// Everything a message needs from the configuration; replaced as a whole on reload.
struct Config {
  Options options;
  KeyStore keys;
  std::unique_ptr<Library> lib;
  common::net::NetworkList internal;
  std::string authserv_id;
  std::optional<std::string> hop_secret;  // seals our A-R headers (common/authres/seal.h)
  FailureAction on_dns_error = FailureAction::kAccept;
  FailureAction on_bad_signature = FailureAction::kAccept;
  FailureAction on_key_not_found = FailureAction::kAccept;
  FailureAction on_signing_error = FailureAction::kTempfail;
  bool arc_verify = true;
  ArcSealMode arc_seal = ArcSealMode::kNone;
  std::optional<SigningKey> arc_seal_key;       // --arc-seal-key; empty: the DKIM signing key
  std::shared_ptr<arc::PkeyPtr> arc_seal_pkey;  // its parse (shared: Config is copied whole)
};

// Builds and checks a Config (loads keys): throws on any problem.
std::shared_ptr<const Config> make_config(const Options& o);

// mxguard-dkim's daemon (open/serve/stop/reload on its own socket) and its filter module
// (sessions for an mxguard-milter chain; the daemon serves the same sessions).
class DkimService : public common::daemon::Service<Options>, public common::milter::Filter {
 public:
  explicit DkimService(const Options& o);
  ~DkimService() override;
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;
  // libmilter catches TERM, INT and HUP itself; under our engine the skeleton does.
  std::set<int> signals_owned() const override { return engine_.signals_owned(); }

  // Filter
  const common::milter::MilterOptions& milter_options() const override { return milter_options_; }
  std::unique_ptr<common::milter::Session> new_session() override;
  bool wants_non_smtp() const override { return true; }  // signs local submissions
  void start() override;                                 // the resolver (a thread)

  std::shared_ptr<const Config> config() const;
  // Key lookup through the shared resolver (blocking, bounded by --dns-timeout).
  KeyLookupResult lookup_key(const std::string& name);
  // Tests may replace DNS with fixed records.
  void set_key_lookup(KeyLookup lookup) { test_lookup_ = std::move(lookup); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Config> config_;
  common::dns::ResolverOptions dns_options_;
  std::unique_ptr<common::dns::Resolver> resolver_;  // created in serve(): it starts a thread
  common::milter::EngineOptions engine_;             // for signals_owned()
  common::milter::MilterOptions milter_options_;
  std::unique_ptr<common::milter::Milter> milter_;
  KeyLookup test_lookup_;
};

}  // namespace mxguard::milter::dkim
