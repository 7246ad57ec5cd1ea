// The mxguard-dkim milter (see dkim_milter.h). The only file of the daemon that includes
// libmilter's headers (for the SMFIF_/SMFIP_ flags it negotiates).
#include "milters/dkim/dkim_milter.h"

#include <libmilter/mfapi.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>

#include "common/authres/authres.h"
#include "common/authres/seal.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/host.h"
#include "common/util/strings.h"
#include "milters/arc/chain.h"
#include "milters/arc/sealer.h"
#include "milters/dkim/arc_keys.h"
#include "milters/dkim/decision.h"
#include "milters/dkim/key_lookup.h"
#include "milters/dkim/signer.h"

namespace mxguard::milter::dkim {
namespace {

using common::milter::Context;
using common::milter::Status;

using mxguard::common::util::iequals;

common::metrics::Counter& counter(const char* name, const char* help,
                                  const common::metrics::Labels& labels = {}) {
  return common::metrics::Registry::global().counter(name, help, labels);
}

common::metrics::Counter& signed_total() {
  return counter("mxguard_dkim_signed_total", "Messages signed");
}
common::metrics::Counter& unsigned_total(const char* reason) {
  return counter("mxguard_dkim_not_signed_total",
                 "Messages from internal senders that were not signed", {{"reason", reason}});
}
common::metrics::Counter& signing_errors() {
  return counter("mxguard_dkim_signing_errors_total", "Messages we should sign but could not");
}
common::metrics::Counter& verify_results(const std::string& result) {
  return counter("mxguard_dkim_verify_results_total", "Verified signatures by result",
                 {{"result", result}});
}
common::metrics::Counter& forged_removed() {
  return counter("mxguard_dkim_forged_authres_removed_total",
                 "Incoming Authentication-Results headers claiming our authserv-id, removed");
}
common::metrics::Counter& forged_rejected() {
  return counter("mxguard_dkim_forged_authres_rejected_total",
                 "Messages rejected for more forged Authentication-Results than we delete");
}
common::metrics::Counter& arc_results(std::string_view result) {
  return counter("mxguard_dkim_arc_total", "ARC chains verified, by result (pass, fail, none)",
                 {{"result", std::string(result)}});
}
common::metrics::Counter& arc_sealed(const char* outcome) {
  return counter("mxguard_dkim_arc_sealed_total",
                 "Messages considered for an ARC seal, by outcome (sealed, skipped, error)",
                 {{"outcome", outcome}});
}
common::metrics::Counter& dns_errors() {
  return counter("mxguard_dkim_dns_errors_total", "Key lookups that failed temporarily");
}

class DkimSession : public common::milter::Session {
 public:
  explicit DkimSession(DkimService& service) : service_(service) {}

  Status on_connect(Context&, const common::milter::ConnectInfo& info) override {
    client_ = info.address;
    return Status::kContinue;
  }

  Status on_mail_from(Context& c, const std::vector<std::string>&) override {
    reset();
    config_ = service_.config();
    auto auth = c.macro("{auth_authen}");
    authenticated_ = auth && !auth->empty();
    // No client address: a non-SMTP submission (sendmail(1) → non_smtpd_milters).
    sign_ = client_.empty() || authenticated_ || config_->internal.contains(client_);
    if (sign_ ? config_->arc_seal != ArcSealMode::kNone : config_->arc_verify) {
      arc_ = std::make_unique<arc::Message>();
    }
    return Status::kContinue;
  }

  Status on_header(Context&, std::string_view name, std::string_view value) override {
    if (!config_) return Status::kContinue;  // no MAIL FROM seen: nothing to do
    if (iequals(name, "Authentication-Results")) {
      ++authres_count_;
      authres_seen_ = true;
      if (common::authres::claims_authserv_id(value, config_->authserv_id)) {
        // Judged at the end of the message, when the queue id its seal must fit is known.
        // Past the deletion cap the message is rejected anyway: keep the index, not the
        // text, so a flood of headers costs no memory (an empty value never verifies).
        bool keep_text =
            ours_.size() <= static_cast<std::size_t>(common::milter::kMaxHeaderDeletions);
        ours_.push_back({authres_count_, keep_text ? std::string(value.substr(0, 65536)) : ""});
        return Status::kContinue;  // not part of what we sign or verify
      }
    }
    if (iequals(name, "From")) {
      ++from_count_;
      if (from_count_ == 1) from_ = std::string(value);
    }
    if (iequals(name, "DKIM-Signature")) ++signature_count_;
    headers_.push_back(header_field(name, value));
    if (arc_) arc_->header(name, value);
    return Status::kContinue;
  }

  Status on_eoh(Context& c) override {
    if (!config_) return Status::kContinue;
    id_ = c.queue_id().empty() ? "NOQUEUE" : c.queue_id();
    if (arc_) {
      bool seal = false;
      if (sign_) {
        // --arc-seal=forwarded: the message was received elsewhere and is passed on.
        seal = config_->arc_seal == ArcSealMode::kAll ||
               (config_->arc_seal == ArcSealMode::kForwarded && (arc_->has_arc() || authres_seen_));
        if (!seal) arc_.reset();
      }
      if (arc_) arc_->end_of_headers(seal);
    }
    if (sign_) {
      start_signing();
    } else {
      KeyLookup lookup = [this](const std::string& name) { return service_.lookup_key(name); };
      VerifyOptions vo{config_->options.max_signatures_to_verify, config_->options.minimum_key_bits,
                       config_->options.allow_sha1};
      verifier_ = std::make_unique<Verifier>(*config_->lib, lookup, vo, id_);
      for (const auto& h : headers_) verifier_->header(h);
      verifier_->end_of_headers();
    }
    headers_.clear();
    headers_.shrink_to_fit();
    return Status::kContinue;
  }

  Status on_body(Context&, std::string_view chunk) override {
    if (arc_) arc_->body(chunk);
    if (signer_) {
      try {
        signer_->body(chunk);
      } catch (const SigningError& ex) {
        signing_error_ = ex.what();
        signer_.reset();
      }
    } else if (verifier_) {
      verifier_->body(chunk);
    }
    return Status::kContinue;
  }

  Status on_eom(Context& c) override {
    if (!config_) return Status::kAccept;
    std::string qid = c.queue_id();
    // DESIGN §2's trust rule: an A-R with our authserv-id that carries no valid seal of this
    // host (common/authres/seal.h) came with the message: forged, deleted. A sealed one was
    // written at this hop (mxguard-policyd's spf-header) and stays.
    for (const auto& [index, value] : ours_) {
      // (Not `cond ? *opt : ""`: that is a temporary std::string, and the view would dangle.)
      std::string_view secret;
      if (config_->hop_secret) secret = *config_->hop_secret;
      if (common::authres::check_seal(value, secret, qid) == common::authres::SealCheck::kNone) {
        forged_.push_back(index);
      }
    }
    if (forged_.size() > static_cast<std::size_t>(common::milter::kMaxHeaderDeletions)) {
      // More forged results than we delete: no legitimate message carries them, and leaving
      // some would hand them to whatever reads Authentication-Results after us.
      forged_rejected().inc();
      common::log::decision(qid, {{"dkim", "reject"},
                                  {"reason", "forged-authentication-results"},
                                  {"forged_ar", std::to_string(forged_.size())}});
      c.set_reply("550", "5.7.1", "Message carries forged Authentication-Results headers");
      reset();
      return Status::kReject;
    }
    // Forged A-R headers first: delete from the last, so the indexes stay valid. In a chain
    // (mxguard-milter) the first filter that judges them deletes them, once.
    if (shared_ && shared_->forged_authres_removed) forged_.clear();
    for (auto it = forged_.rbegin(); it != forged_.rend(); ++it) {
      c.delete_header("Authentication-Results", *it);
      forged_removed().inc();
    }
    if (shared_) shared_->forged_authres_removed = true;
    std::string forged = std::to_string(forged_.size());
    Status st = sign_ ? finish_signing(c, qid, forged) : finish_verifying(c, qid, forged);
    reset();
    return st;
  }

  void on_abort(Context&) override { reset(); }

 private:
  void reset() {
    config_.reset();
    signer_.reset();
    verifier_.reset();
    arc_.reset();
    authres_seen_ = false;
    headers_.clear();
    forged_.clear();
    from_.clear();
    seal_key_.reset();
    signing_error_.clear();
    not_signed_.clear();
    authres_count_ = from_count_ = signature_count_ = 0;
    ours_.clear();
    sign_ = authenticated_ = false;
  }

  void start_signing() {
    if (from_count_ == 0) {
      not_signed_ = "no-from";
      return;
    }
    if (from_count_ > 1) {
      not_signed_ = "several-from";
      return;
    }
    std::string address = from_address(from_);
    auto keys = config_->keys.keys_for(address);
    if (keys.empty()) {
      not_signed_ = "no-key";
      return;
    }
    seal_key_ = keys.front();
    try {
      signer_ = std::make_unique<Signer>(*config_->lib, std::move(keys), id_,
                                         SignOptions{config_->options.sign_body_length});
      for (const auto& h : headers_) signer_->header(h);
      signer_->end_of_headers();
    } catch (const SigningError& ex) {
      signing_error_ = ex.what();
      signer_.reset();
    }
  }

  // Applies a failure action; returns the status for the MTA. The headers we add go on for
  // accept and quarantine.
  Status apply(Context& c, FailureAction a, const std::string& reason, bool signing) {
    FailureReply r = failure_reply(a, reason, signing ? Mode::kSign : Mode::kVerify);
    if (r.quarantine) c.quarantine(*r.quarantine);
    if (!r.rcode.empty()) c.set_reply(r.rcode, r.xcode, r.text);
    switch (r.status) {
      case FailureReply::Status::kAccept:
        return Status::kAccept;
      case FailureReply::Status::kReject:
        return Status::kReject;
      case FailureReply::Status::kTempfail:
        break;
    }
    return Status::kTempfail;
  }

  // The ARC chain's result (RFC 8617 §5.2) when ARC is on for this message.
  std::optional<arc::ChainResult> validate_arc() {
    if (!arc_) return std::nullopt;
    arc_->end_of_body();
    KeyLookup lookup = [this](const std::string& name) { return service_.lookup_key(name); };
    return arc::validate_chain(*arc_, arc_key_fetcher(lookup));
  }

  // "pass/0" (with oldest-pass), "fail", "none"; "off" when ARC verification is off.
  static std::string arc_log(const std::optional<arc::ChainResult>& chain) {
    if (!chain) return "off";
    // RESULT/NEWEST-SEALER, as mxguard-dmarc logs it: the hop that handed the message to us is
    // what an admin (and --trusted-arc-sealers) asks about; oldest-pass is in the A-R header.
    std::string out(arc::cv_name(chain->result));
    if (!chain->sealers.empty()) out += "/" + chain->sealers.front().domain;
    return out;
  }

  // Adds an ARC set (--arc-seal) to a message we sign; returns the log field: "i=N" for a
  // set added, "skipped:REASON", or "" when sealing does not apply to this message.
  std::string seal_arc(Context& c, const std::optional<SigningKey>& dkim_key) {
    if (!arc_) return "";
    std::optional<arc::ChainResult> chain = validate_arc();
    const SigningKey* key =
        config_->arc_seal_key ? &*config_->arc_seal_key : (dkim_key ? &*dkim_key : nullptr);
    if (!key) {
      arc_sealed("skipped").inc();
      return "skipped:no-key";
    }
    arc::PkeyPtr own;
    EVP_PKEY* pkey = nullptr;
    if (config_->arc_seal_key) {
      pkey = config_->arc_seal_pkey->get();
    } else {
      own = arc::private_key_from_pem(key->key->pem);
      pkey = own.get();
    }
    common::authres::Builder results(config_->authserv_id);
    // This hop's results: our A-R headers that were written here (sealed, not forged), the
    // earlier filters' in a chain, and the ARC result.
    std::string_view secret;
    if (config_->hop_secret) secret = *config_->hop_secret;
    for (const auto& [index, value] : ours_) {
      // Judged again rather than read from forged_, which a chain clears once deleted.
      if (common::authres::check_seal(value, secret, c.queue_id()) ==
          common::authres::SealCheck::kNone) {
        continue;
      }
      if (auto h = common::authres::parse(common::authres::strip_seal(value))) {
        for (auto& r : h->results) results.add(std::move(r));
      }
    }
    if (shared_) {
      for (const auto& r : shared_->authres) results.add(r);
    }
    results.add(arc::to_authres(*chain, client_));
    std::string text = results.value(false);
    arc::SealRequest req;
    req.domain = key->domain;
    req.selector = key->selector;
    req.key = pkey;
    req.authserv_id = config_->authserv_id;
    req.results = text.substr(text.find(';') + 1);
    while (!req.results.empty() && req.results.front() == ' ') req.results.erase(0, 1);
    req.headers = config_->options.arc_seal_headers;
    req.timestamp = static_cast<std::int64_t>(::time(nullptr));
    req.fold = "\n\t";  // libmilter's line breaks; the MTA writes CRLF
    arc::SealOutcome o;
    try {
      o = arc::seal(*arc_, *chain, req);
    } catch (const std::runtime_error& ex) {
      arc_sealed("error").inc();
      return std::string("error:") + ex.what();
    }
    if (!o.set) {
      arc_sealed("skipped").inc();
      std::string why = o.skipped;
      std::replace(why.begin(), why.end(), ' ', '-');
      return "skipped:" + why;
    }
    // Index 0 each time: AAR, then AMS above it, then AS on top.
    c.insert_header(0, "ARC-Authentication-Results", o.set->auth_results);
    c.insert_header(0, "ARC-Message-Signature", o.set->message_signature);
    c.insert_header(0, "ARC-Seal", o.set->seal);
    arc_sealed("sealed").inc();
    return "i=" + std::to_string(o.set->instance) +
           "/cv=" + std::string(arc::cv_name(chain->result));
  }

  Status finish_signing(Context& c, const std::string& qid, const std::string& forged) {
    if (!not_signed_.empty()) {
      unsigned_total(not_signed_.c_str()).inc();
      std::string arc_seal = seal_arc(c, std::nullopt);
      common::log::decision(qid, {{"mode", "sign"},
                                  {"action", "none"},
                                  {"reason", not_signed_},
                                  {"client", client_.empty() ? "local" : client_},
                                  {"forged_ar_removed", forged},
                                  {"arc_seal", arc_seal.empty() ? "-" : arc_seal}});
      return Status::kAccept;
    }
    std::vector<std::string> sigs;
    std::string keys;
    if (signer_) {
      for (const auto& k : signer_->keys()) {
        if (!keys.empty()) keys += ",";
        keys += k.domain + "/" + k.selector + "/" + std::string(key_type_name(k.key->type));
      }
      try {
        sigs = signer_->finish();
      } catch (const SigningError& ex) {
        signing_error_ = ex.what();
      }
    }
    if (!signing_error_.empty() || sigs.empty()) {
      if (signing_error_.empty()) signing_error_ = "no signature produced";
      signing_errors().inc();
      Status st = apply(c, config_->on_signing_error, signing_error_, true);
      common::log::write(common::log::Level::kError,
                         common::log::format_decision(
                             qid, {{"mode", "sign"},
                                   {"action", failure_action_name(config_->on_signing_error)},
                                   {"keys", keys},
                                   {"reason", signing_error_}}));
      return st;
    }
    for (const auto& s : sigs) c.insert_header(0, "DKIM-Signature", " " + s);
    signed_total().inc();
    std::string arc_seal = seal_arc(c, seal_key_);
    common::log::decision(qid, {{"mode", "sign"},
                                {"action", "signed"},
                                {"keys", keys},
                                {"client", client_.empty() ? "local" : client_},
                                {"auth", authenticated_ ? "yes" : "no"},
                                {"forged_ar_removed", forged},
                                {"arc_seal", arc_seal.empty() ? "-" : arc_seal}});
    return Status::kAccept;
  }

  Status finish_verifying(Context& c, const std::string& qid, const std::string& forged) {
    std::vector<SignatureResult> results;
    unsigned ignored = 0;
    if (verifier_) {
      results = verifier_->finish();
      ignored = verifier_->ignored();
    }
    VerifyDecision d = decide_verify(results, {.on_dns_error = config_->on_dns_error,
                                               .on_key_not_found = config_->on_key_not_found,
                                               .on_bad_signature = config_->on_bad_signature});
    for (const auto& r : results) verify_results(r.result).inc();
    if (d.dns_error) dns_errors().inc();
    std::optional<arc::ChainResult> chain = validate_arc();
    std::optional<common::authres::Result> arc_result;
    if (chain) {
      arc_result = arc::to_authres(*chain, client_);
      arc_results(arc::cv_name(chain->result)).inc();
    }
    if (shared_) {
      // In a chain: typed results for the filters after us; the chain writes the header.
      if (shared_->authserv_id.empty()) shared_->authserv_id = config_->authserv_id;
      if (results.empty()) shared_->authres.push_back({"dkim", "", "none", "", "", {}});
      for (const auto& r : results) shared_->authres.push_back(r.to_authres());
      if (arc_result) shared_->authres.push_back(*arc_result);
      shared_->dkim_verified = true;
    } else {
      std::string ar = " " + authentication_results(config_->authserv_id, results,
                                                    arc_result ? &*arc_result : nullptr);
      // Sealed for this message, so mxguard-dmarc can tell it from one the sender wrote.
      if (config_->hop_secret) ar = common::authres::add_seal(ar, *config_->hop_secret, qid);
      c.insert_header(0, "Authentication-Results", ar);
    }
    Status st = apply(c, d.action, d.reason, false);
    common::log::decision(qid, {{"mode", "verify"},
                                {"dkim", d.summary},
                                {"ignored", std::to_string(ignored)},
                                {"action", failure_action_name(d.action)},
                                {"client", client_},
                                {"forged_ar_removed", forged},
                                {"arc", arc_log(chain)}});
    return st;
  }

  DkimService& service_;
  std::shared_ptr<const Config> config_;
  std::string client_;
  std::string id_;
  bool sign_ = false;
  bool authenticated_ = false;
  std::vector<std::string> headers_;  // buffered until EOH: the From header picks the keys
  std::vector<int> forged_;           // 1-based indexes among Authentication-Results
  std::vector<std::pair<int, std::string>> ours_;  // A-R claiming our id: index, value
  int authres_count_ = 0;
  int from_count_ = 0;
  int signature_count_ = 0;
  std::string from_;
  std::unique_ptr<Signer> signer_;
  std::unique_ptr<Verifier> verifier_;
  std::unique_ptr<arc::Message> arc_;   // ARC verification or sealing is on for this message
  bool authres_seen_ = false;           // an Authentication-Results header came with it
  std::optional<SigningKey> seal_key_;  // the first DKIM key: the default ARC sealing key
  std::string signing_error_;
  std::string not_signed_;
};

}  // namespace

std::shared_ptr<const Config> make_config(const Options& o) {
  auto c = std::make_shared<Config>();
  c->options = o;
  c->keys = KeyStore(o);
  LibraryOptions lo;
  lo.sign_headers = o.sign_headers;
  lo.oversign_headers = o.oversign_headers;
  lo.signature_ttl = o.signature_ttl.seconds();
  lo.minimum_key_bits = o.minimum_key_bits;
  c->lib = std::make_unique<Library>(lo);
  c->internal = common::net::NetworkList(o.internal_hosts);
  c->authserv_id = o.authserv_id.empty() ? common::util::host_name() : o.authserv_id;
  c->hop_secret = common::authres::configured_hop_secret(o.hop_secret_file);
  if (!c->hop_secret) {
    common::log::warning("no hop secret (" + o.hop_secret_file +
                         "): our Authentication-Results headers are not sealed, so mxguard-dmarc "
                         "cannot use their DKIM results");
  }
  c->on_dns_error = o.dns_error_action();
  c->on_bad_signature = o.bad_signature_action();
  c->on_key_not_found = o.key_not_found_action();
  c->on_signing_error = o.signing_error_action();
  c->arc_verify = o.arc_verify;
  c->arc_seal = o.arc_seal_mode();
  if (!o.arc_seal_key.empty()) {
    c->arc_seal_key = parse_arc_seal_key(o.arc_seal_key, o.daemon.user);
    c->arc_seal_pkey =
        std::make_shared<arc::PkeyPtr>(arc::private_key_from_pem(c->arc_seal_key->key->pem));
    if (!*c->arc_seal_pkey) throw KeyError("arc-seal-key: the key does not parse");
  }
  return c;
}

DkimService::DkimService(const Options& o) : config_(make_config(o)), dns_options_(o.dns) {
  auto& mo = milter_options_;
  mo.name = "mxguard-dkim";
  mo.listen = o.daemon.listen;
  mo.actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
  // Raw header values (leading space kept) are what the signature covers.
  mo.protocol = SMFIP_HDR_LEADSPC | SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA;
  mo.timeout_seconds = static_cast<int>(o.milter_timeout.seconds().count());
  mo.on_internal_error = common::milter::parse_failure_status(o.on_internal_error);
  o.engine.apply(mo);
  engine_ = o.engine;
  milter_ = std::make_unique<common::milter::Milter>(mo, [this] { return new_session(); });
}

DkimService::~DkimService() = default;

std::unique_ptr<common::milter::Session> DkimService::new_session() {
  return std::make_unique<DkimSession>(*this);
}

void DkimService::start() {
  if (!test_lookup_ && !resolver_)
    resolver_ = std::make_unique<common::dns::Resolver>(dns_options_);
}

void DkimService::open() { milter_->open(); }

void DkimService::serve() {
  start();
  milter_->serve();
}

void DkimService::stop() { milter_->stop(); }

void DkimService::reload(const Options& fresh) {
  auto c = make_config(fresh);  // throws: the running configuration stays
  std::lock_guard lock(mutex_);
  config_ = std::move(c);
}

std::shared_ptr<const Config> DkimService::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

KeyLookupResult DkimService::lookup_key(const std::string& name) {
  if (test_lookup_) return test_lookup_(name);
  if (!resolver_) return {KeyLookupResult::Kind::kTempError, "", "resolver not running"};
  return lookup_key_record(*resolver_, name);
}

}  // namespace mxguard::milter::dkim
