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
    return Status::kContinue;
  }

  Status on_header(Context&, std::string_view name, std::string_view value) override {
    if (!config_) return Status::kContinue;  // no MAIL FROM seen: nothing to do
    if (iequals(name, "Authentication-Results")) {
      ++authres_count_;
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
    return Status::kContinue;
  }

  Status on_eoh(Context& c) override {
    if (!config_) return Status::kContinue;
    id_ = c.queue_id().empty() ? "NOQUEUE" : c.queue_id();
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
    headers_.clear();
    forged_.clear();
    from_.clear();
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

  Status finish_signing(Context& c, const std::string& qid, const std::string& forged) {
    if (!not_signed_.empty()) {
      unsigned_total(not_signed_.c_str()).inc();
      common::log::decision(qid, {{"mode", "sign"},
                                  {"action", "none"},
                                  {"reason", not_signed_},
                                  {"client", client_.empty() ? "local" : client_},
                                  {"forged_ar_removed", forged}});
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
    common::log::decision(qid, {{"mode", "sign"},
                                {"action", "signed"},
                                {"keys", keys},
                                {"client", client_.empty() ? "local" : client_},
                                {"auth", authenticated_ ? "yes" : "no"},
                                {"forged_ar_removed", forged}});
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
    if (shared_) {
      // In a chain: typed results for the filters after us; the chain writes the header.
      if (shared_->authserv_id.empty()) shared_->authserv_id = config_->authserv_id;
      if (results.empty()) shared_->authres.push_back({"dkim", "", "none", "", "", {}});
      for (const auto& r : results) shared_->authres.push_back(r.to_authres());
      shared_->dkim_verified = true;
    } else {
      std::string ar = " " + authentication_results(config_->authserv_id, results);
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
                                {"forged_ar_removed", forged}});
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
