// The mxguard-dmarc milter (see dmarc_milter.h). The only file of the daemon that includes
// libmilter's headers (for the SMFIF_/SMFIP_ flags it negotiates).
#include "milters/dmarc/dmarc_milter.h"

#include <libmilter/mfapi.h>
#include <strings.h>

#include <algorithm>
#include <random>
#include <set>

#include "common/authres/authres.h"
#include "common/authres/seal.h"
#include "common/log/log.h"
#include "common/mail/from.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "common/util/host.h"

namespace mxguard::milter::dmarc {

using common::mail::FromLimits;
using common::mail::FromParse;
using common::mail::normalize_domain;
using common::mail::parse_from;
namespace {

using common::milter::Context;
using common::milter::Status;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

common::metrics::Counter& counter(const char* name, const char* help,
                                  const common::metrics::Labels& labels = {}) {
  return common::metrics::Registry::global().counter(name, help, labels);
}
common::metrics::Counter& results_total(const std::string& result) {
  return counter("mxguard_dmarc_results_total", "Evaluated messages by DMARC result",
                 {{"result", result}});
}
common::metrics::Counter& actions_total(const std::string& action) {
  return counter("mxguard_dmarc_actions_total", "Messages by action taken", {{"action", action}});
}
common::metrics::Counter& forged_rejected() {
  return counter("mxguard_dmarc_forged_authres_rejected_total",
                 "Messages rejected for more forged Authentication-Results than we delete");
}
common::metrics::Counter& forged_removed() {
  return counter("mxguard_dmarc_forged_authres_removed_total",
                 "Authentication-Results headers claiming our authserv-id below the trusted one");
}
common::metrics::Counter& aggregate_errors() {
  return counter("mxguard_dmarc_aggregate_errors_total",
                 "Messages whose aggregate report data could not be stored in Redis");
}
common::metrics::Counter& skipped_total(const char* reason) {
  return counter("mxguard_dmarc_skipped_total", "Messages not evaluated", {{"reason", reason}});
}

std::string strip_angles(std::string s) {
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
  return s;
}

std::string domain_of(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : normalize_domain(address.substr(at + 1));
}

bool in_or_under(const std::string& name, const std::vector<std::string>& domains) {
  std::string n = normalize_domain(name);
  if (n.empty()) return false;
  for (const auto& d0 : domains) {
    std::string d = normalize_domain(d0);
    if (n == d || (n.size() > d.size() && n.ends_with(d) && n[n.size() - d.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

int severity(const Evaluation& e) {
  if (e.result == "fail") return 10 + static_cast<int>(e.disposition);
  if (e.result == "temperror") return 5;
  if (e.result == "permerror") return 3;
  if (e.result == "none") return 2;
  return 1;  // pass
}

class DmarcSession : public common::milter::Session {
 public:
  explicit DmarcSession(DmarcService& service) : service_(service) {}

  Status on_connect(Context&, const common::milter::ConnectInfo& info) override {
    client_ = info.address;
    client_host_ = info.hostname;
    return Status::kContinue;
  }

  Status on_helo(Context&, std::string_view helo) override {
    helo_ = std::string(helo);
    return Status::kContinue;
  }

  Status on_mail_from(Context& c, const std::vector<std::string>& args) override {
    reset();
    config_ = service_.config();
    envelope_from_ = args.empty() ? std::string() : strip_angles(args[0]);
    auto auth = c.macro("{auth_authen}");
    if (config_->options.ignore_authenticated && auth && !auth->empty())
      skip_ = "authenticated";
    else if (client_.empty())
      skip_ = "local";
    else if (config_->trusted.contains(client_))
      skip_ = "trusted-network";
    return Status::kContinue;
  }

  Status on_header(Context&, std::string_view name, std::string_view value) override {
    if (!config_) return Status::kContinue;
    if (iequals(name, "From")) {
      ++from_headers_;
      if (from_values_.size() < 4) from_values_.emplace_back(value.substr(0, 65536));
    } else if (iequals(name, "Authentication-Results")) {
      ++authres_count_;
      // Judged at the end of the message, when the queue id its seal must fit is known.
      if (common::authres::claims_authserv_id(value, config_->authserv_id)) {
        // Past the deletion cap the message is rejected anyway: keep the index, not the
        // text, so a flood of headers costs no memory (an empty value never verifies).
        bool keep_text =
            ours_.size() <= static_cast<std::size_t>(common::milter::kMaxHeaderDeletions);
        ours_.push_back({authres_count_, keep_text ? std::string(value.substr(0, 65536)) : ""});
      }
    }
    return Status::kContinue;
  }

  Status on_eom(Context& c) override {
    if (!config_) return Status::kAccept;
    std::string qid = c.queue_id();
    judge_authres(qid);
    Status st = finish(c, qid);
    reset();
    return st;
  }

  void on_abort(Context&) override { reset(); }

 private:
  void reset() {
    config_.reset();
    envelope_from_.clear();
    skip_.clear();
    from_values_.clear();
    from_headers_ = authres_count_ = trusted_index_ = 0;
    trusted_values_.clear();
    forged_.clear();
    ours_.clear();
  }

  // DESIGN §2's trust rule: only an A-R with our authserv-id that an earlier milter of this
  // hop sealed for this queue id is trusted (its DKIM results are read); one sealed by our
  // policy server for no particular message is kept but not read; every other one came with
  // the message: forged, deleted.
  void judge_authres(const std::string& qid) {
    // (Not `cond ? *opt : ""`: that is a temporary std::string, and the view would dangle.)
    std::string_view secret;
    if (config_->hop_secret) secret = *config_->hop_secret;
    for (const auto& [index, value] : ours_) {
      switch (common::authres::check_seal(value, secret, qid)) {
        case common::authres::SealCheck::kMessage:
          if (trusted_index_ == 0) trusted_index_ = index;
          trusted_values_.push_back(common::authres::strip_seal(value));
          break;
        case common::authres::SealCheck::kHop:
          break;
        case common::authres::SealCheck::kNone:
          // In a chain the first filter that judged them deleted them already.
          if (!(shared_ && shared_->forged_authres_removed)) forged_.push_back(index);
          break;
      }
    }
  }

  // Deletes forged A-R headers (from the last, so indexes stay valid).
  void remove_forged(Context& c) {
    for (auto it = forged_.rbegin(); it != forged_.rend(); ++it) {
      c.delete_header("Authentication-Results", *it);
      forged_removed().inc();
    }
    if (shared_) shared_->forged_authres_removed = true;
  }

  // Our A-R header: the trusted one extended with our results, or a new one. In a chain
  // (mxguard-milter) with no trusted header, our results join the chain's one header.
  void write_authres(Context& c, const std::vector<common::authres::Result>& ours) {
    if (shared_ && trusted_index_ == 0) {
      if (shared_->authserv_id.empty()) shared_->authserv_id = config_->authserv_id;
      for (const auto& r : ours) {
        // Ours replaces an spf entry another filter of the chain wrote.
        if (r.method == "spf") {
          std::erase_if(shared_->authres, [](const auto& x) { return x.method == "spf"; });
        }
        shared_->authres.push_back(r);
      }
      return;
    }
    common::authres::Builder b(config_->authserv_id);
    if (trusted_index_ > 0) {
      if (auto h = common::authres::parse(trusted_values_.front())) {
        for (auto r : h->results) {
          if (r.method == "dmarc") continue;  // ours replaces any
          if (!r.comment.empty() && r.comment.front() == '(') {
            r.comment = r.comment.substr(1, r.comment.size() >= 2 ? r.comment.size() - 2 : 0);
          }
          b.add(r);
        }
      }
    }
    for (const auto& r : ours) b.add(r);
    if (trusted_index_ > 0) {
      c.change_header("Authentication-Results", trusted_index_, b.value(true));
    } else {
      c.insert_header(0, "Authentication-Results", b.value(true));
    }
  }

  // The DKIM results we believe: in a chain with a dkim filter, the typed results it handed
  // over; otherwise those of A-R headers sealed for this message at this hop.
  std::vector<AuthResult> trusted_dkim() const {
    std::vector<common::authres::Header> headers;
    if (shared_ && shared_->dkim_verified) {
      headers.push_back({shared_->authserv_id, std::nullopt, shared_->authres});
    } else {
      for (const auto& value : trusted_values_) {
        if (auto h = common::authres::parse(value)) headers.push_back(std::move(*h));
      }
    }
    std::vector<AuthResult> out;
    for (const auto& h : headers) {
      for (const auto& r : h.results) {
        if (r.method != "dkim") continue;
        AuthResult a;
        a.result = r.result;
        if (const auto* d = r.property("header", "d"))
          a.domain = *d;
        else if (const auto* i = r.property("header", "i"))
          a.domain = domain_of(*i);
        if (const auto* s = r.property("header", "s")) a.selector = *s;
        if (!a.domain.empty()) out.push_back(std::move(a));
      }
    }
    return out;
  }

  Status reply(Context& c, Status st, const std::string& code, const std::string& xcode,
               const std::string& text) {
    c.set_reply(code, xcode, text);
    return st;
  }

  Status finish(Context& c, const std::string& qid) {
    const Options& o = config_->options;
    if (!skip_.empty()) {
      skipped_total(skip_.c_str()).inc();
      common::log::decision(qid, {{"dmarc", "skipped"},
                                  {"reason", skip_},
                                  {"client", client_.empty() ? "local" : client_}});
      return Status::kAccept;
    }
    if (forged_.size() > static_cast<std::size_t>(common::milter::kMaxHeaderDeletions)) {
      // More forged results than we delete (see mxguard-dkim, which does the same first).
      forged_rejected().inc();
      common::log::decision(qid, {{"dmarc", "reject"},
                                  {"reason", "forged-authentication-results"},
                                  {"forged_ar", std::to_string(forged_.size())}});
      return reply(c, Status::kReject, "550", "5.7.1",
                   "Message carries forged Authentication-Results headers");
    }
    remove_forged(c);
    std::string forged = std::to_string(forged_.size());

    // The author domain(s).
    std::vector<std::string> domains;
    std::string from_problem;
    if (from_headers_ == 0) from_problem = "no From header";
    for (const auto& v : from_values_) {
      FromParse p = parse_from(v, FromLimits{8192, o.max_from_addresses});
      if (!p.ok()) {
        from_problem = "From: " + p.error;
        break;
      }
      for (const auto& m : p.mailboxes) {
        if (std::find(domains.begin(), domains.end(), m.domain) == domains.end()) {
          domains.push_back(m.domain);
        }
      }
    }
    if (from_problem.empty() && from_headers_ > from_values_.size()) {
      from_problem = "too many From headers";
    }
    if (!from_problem.empty()) {
      results_total("permerror").inc();
      common::authres::Result r{"dmarc", "", "permerror", "", "", {}};
      r.reason = from_problem;
      write_authres(c, {r});
      bool reject = o.on_bad_from == "reject" && o.enforce;
      actions_total(reject ? "reject" : "accept").inc();
      common::log::decision(qid, {{"dmarc", "permerror"},
                                  {"action", reject ? "reject" : "accept"},
                                  {"reason", from_problem},
                                  {"client", client_},
                                  {"forged_ar_removed", forged}});
      if (reject) {
        return reply(c, Status::kReject, "550", "5.7.1",
                     "Message must have one From header with valid addresses (RFC 5322)");
      }
      return Status::kAccept;
    }
    if (domains.size() > 1 && o.multi_from == "reject") {
      results_total("permerror").inc();
      actions_total(o.enforce ? "reject" : "accept").inc();
      std::string list;
      for (const auto& d : domains) list += (list.empty() ? "" : ",") + d;
      common::log::decision(qid, {{"dmarc", "permerror"},
                                  {"action", o.enforce ? "reject" : "accept"},
                                  {"reason", "several From domains"},
                                  {"from", list},
                                  {"client", client_}});
      common::authres::Result r{"dmarc", "", "permerror", "several From domains", "", {}};
      write_authres(c, {r});
      if (o.enforce) {
        return reply(c, Status::kReject, "550", "5.7.1",
                     "Messages with several From domains are not accepted");
      }
      return Status::kAccept;
    }

    // SPF on the envelope sender (HELO for the null sender): DMARC's SPF identity.
    AuthResult spf;
    std::string spf_scope = "mfrom";
    std::string mail_domain = domain_of(envelope_from_);
    if (envelope_from_.empty() || mail_domain.empty()) {
      spf_scope = "helo";
      spf.domain = normalize_domain(helo_);
    } else {
      spf.domain = mail_domain;
    }
    spf.result = "none";
    common::authres::Result spf_ar{"spf", "", "none", "", "", {}};
    if (o.spf_self_check) {
      auto ip = common::net::IpAddress::parse(client_);
      if (ip && !spf.domain.empty()) {
        common::spf::Request req;
        req.ip = *ip;
        req.domain = spf.domain;
        req.sender = spf_scope == "helo" ? "postmaster@" + spf.domain : envelope_from_;
        req.helo = helo_;
        req.receiver = config_->authserv_id;
        auto outcome = service_.check_spf(req);
        spf.result = std::string(common::spf::result_name(outcome.result));
      }
      spf_ar.result = spf.result;
      spf_ar.properties.push_back({"smtp", spf_scope == "helo" ? "helo" : "mailfrom",
                                   spf_scope == "helo" ? spf.domain : envelope_from_});
    }

    auto dkim = trusted_dkim();
    Lookups lookups = service_.lookups();
    Evaluator ev(*config_->org, lookups, [this] { return service_.random100(); });
    Evaluation worst;
    bool first = true;
    for (const auto& d : domains) {
      Evaluation e = ev.evaluate(d, dkim, spf);
      if (first || severity(e) > severity(worst)) worst = e;
      first = false;
    }
    const Evaluation& e = worst;
    results_total(e.result).inc();

    // What we do about it.
    std::string action = "accept";
    std::string override_type;
    Status st = Status::kAccept;
    Policy applied = e.result == "fail" ? e.disposition : Policy::kNone;
    if (e.sampled_out) override_type = "sampled_out";
    if (e.result == "temperror") {
      if (o.on_temperror == "tempfail") {
        action = "tempfail";
        st =
            reply(c, Status::kTempfail, "451", "4.7.1",
                  "DMARC policy of " + e.from_domain + " could not be determined, try again later");
      }
    } else if (applied != Policy::kNone) {
      // Only identities somebody verified count, or any sender could claim a list's envelope
      // domain: the envelope domain with an SPF pass (our own check), a DKIM pass for the
      // domain (from our A-R header), or the client host name (Postfix passes it only when
      // its forward and reverse lookups agree).
      bool forwarder =
          (spf.result == "pass" && in_or_under(spf.domain, o.never_reject_domains)) ||
          std::any_of(dkim.begin(), dkim.end(),
                      [&](const AuthResult& a) {
                        return a.result == "pass" && in_or_under(a.domain, o.never_reject_domains);
                      }) ||
          in_or_under(client_host_, o.never_reject_domains);
      if (!o.enforce) {
        action = "none (monitor)";
        override_type = "local_policy";
        applied = Policy::kNone;
      } else if (forwarder) {
        action = "none (never-reject-domains)";
        override_type = "trusted_forwarder";
        applied = Policy::kNone;
      } else if (applied == Policy::kReject) {
        action = "reject";
        std::string text = o.reject_text;
        for (auto pos = text.find("%d"); pos != std::string::npos; pos = text.find("%d", pos)) {
          text.replace(pos, 2, e.from_domain);
          pos += e.from_domain.size();
        }
        st = reply(c, Status::kReject, "550", "5.7.1", text);
      } else if (o.quarantine_action == "hold") {
        action = "hold";
        c.quarantine("DMARC policy of " + e.from_domain);
      } else if (o.quarantine_action == "header") {
        action = "header";
        c.add_header(config_->quarantine_header_name, config_->quarantine_header_value);
      } else {
        action = "accept";
        override_type = "local_policy";
        applied = Policy::kNone;
      }
    }
    actions_total(action.substr(0, action.find(' '))).inc();

    // Our results in our A-R header (not needed on a reject, but harmless; skipped then).
    if (st == Status::kAccept) {
      common::authres::Result dm{"dmarc", "", e.result, "", "", {}};
      if (e.record) {
        dm.comment =
            "p=" + std::string(policy_name(e.policy)) + " dis=" + std::string(policy_name(applied));
      } else if (!e.problem.empty() && e.result != "none") {
        dm.reason = e.problem;
      }
      dm.properties.push_back({"header", "from", e.from_domain});
      std::vector<common::authres::Result> ours;
      if (o.spf_self_check) ours.push_back(spf_ar);
      ours.push_back(dm);
      write_authres(c, ours);
    }

    // Aggregate report data: every message evaluated against a record counts.
    if (o.aggregate_reports && e.record && !e.record->rua.empty()) {
      Row row;
      row.source_ip = client_;
      row.disposition = std::string(policy_name(applied));
      row.dkim_eval = e.dkim_aligned ? "pass" : "fail";
      row.spf_eval = e.spf_aligned ? "pass" : "fail";
      row.override_type = override_type;
      row.header_from = e.from_domain;
      row.envelope_from = mail_domain;
      row.dkim = dkim;
      row.spf = spf;
      row.spf_scope = spf_scope;
      service_.record_aggregate(published_from(e), row);
    }

    std::string dkim_summary;
    for (const auto& d : dkim)
      dkim_summary += (dkim_summary.empty() ? "" : ",") + d.result + "/" + d.domain;
    common::log::decision(qid, {{"dmarc", e.result},
                                {"action", action},
                                {"from", e.from_domain},
                                {"policy_domain", e.policy_domain.empty() ? "-" : e.policy_domain},
                                {"p", e.record ? std::string(policy_name(e.policy)) : "-"},
                                {"dis", std::string(policy_name(applied))},
                                {"dkim", dkim_summary.empty() ? "none" : dkim_summary},
                                {"spf", spf.result + "/" + (spf.domain.empty() ? "-" : spf.domain)},
                                {"aligned", std::string(e.dkim_aligned ? "dkim" : "") +
                                                (e.dkim_aligned && e.spf_aligned ? "," : "") +
                                                (e.spf_aligned ? "spf" : "")},
                                {"override", override_type},
                                {"problem", e.problem},
                                {"client", client_},
                                {"forged_ar_removed", forged}});
    return st;
  }

  DmarcService& service_;
  std::shared_ptr<const Config> config_;
  std::string client_, client_host_, helo_, envelope_from_, skip_;
  std::vector<std::string> from_values_;
  std::size_t from_headers_ = 0;
  int authres_count_ = 0;
  int trusted_index_ = 0;  // the first trusted, 1-based among A-R headers; 0: none
  std::vector<std::string> trusted_values_;        // every trusted one, top first (seal stripped)
  std::vector<std::pair<int, std::string>> ours_;  // every A-R claiming our id: index, value
  std::vector<int> forged_;
};

}  // namespace

std::shared_ptr<const Config> make_config(const Options& o) {
  auto c = std::make_shared<Config>();
  c->options = o;
  c->org = std::make_unique<OrgDomains>(o.public_suffix_list);
  c->trusted = common::net::NetworkList(o.trusted_networks);
  c->authserv_id = o.authserv_id.empty() ? common::util::host_name() : o.authserv_id;
  c->hop_secret = common::authres::configured_hop_secret(o.hop_secret_file);
  if (!c->hop_secret) {
    common::log::warning("no hop secret (" + o.hop_secret_file +
                         "): no Authentication-Results header can be trusted, so DKIM results of "
                         "mxguard-dkim are not used (dkim=none for DMARC)");
  }
  auto colon = o.quarantine_header.find(':');
  c->quarantine_header_name = o.quarantine_header.substr(0, colon);
  std::string v = o.quarantine_header.substr(colon + 1);
  // Without SMFIP_HDR_LEADSPC the MTA writes "Name: value" itself.
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  c->quarantine_header_value = v;
  return c;
}

DmarcService::DmarcService(const Options& o) : config_(make_config(o)), dns_options_(o.dns) {
  auto& mo = milter_options_;
  mo.name = "mxguard-dmarc";
  mo.listen = o.daemon.listen;
  mo.actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
  mo.protocol = SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOBODY;
  mo.timeout_seconds = static_cast<int>(o.milter_timeout.seconds().count());
  mo.on_internal_error = common::milter::parse_failure_status(o.on_internal_error);
  milter_ = std::make_unique<common::milter::Milter>(mo, [this] { return new_session(); });
  if (o.aggregate_reports) {
    redis_ = std::make_unique<common::redis::Pool>(o.redis);
    aggregates_ = std::make_unique<AggregateStore>(*redis_, o.report_interval.seconds(),
                                                   o.report_retention.seconds());
  }
}

DmarcService::~DmarcService() = default;

std::unique_ptr<common::milter::Session> DmarcService::new_session() {
  return std::make_unique<DmarcSession>(*this);
}

void DmarcService::start() {
  if (resolver_) return;
  resolver_ = std::make_unique<common::dns::Resolver>(dns_options_);
  common::spf::Limits limits;
  limits.timeout = config()->options.spf_timeout.value;
  spf_ = std::make_unique<common::spf::Evaluator>(*resolver_, limits);
}

void DmarcService::open() { milter_->open(); }

void DmarcService::serve() {
  start();
  milter_->serve();
}

void DmarcService::stop() { milter_->stop(); }

void DmarcService::reload(const Options& fresh) {
  auto c = make_config(fresh);  // throws: the running configuration stays
  std::lock_guard lock(mutex_);
  config_ = std::move(c);
}

std::shared_ptr<const Config> DmarcService::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

Lookups DmarcService::lookups() {
  Lookups l;
  common::dns::Resolver* r = resolver_.get();
  l.txt = [r](const std::string& name) {
    TxtLookup out;
    if (!r) {
      out.status = TxtLookup::Status::kTempError;
      return out;
    }
    auto a = r->lookup_txt(name);
    switch (a.status) {
      case common::dns::Status::kOk:
        out.status = TxtLookup::Status::kOk;
        out.records = std::move(a.records);
        break;
      case common::dns::Status::kNxDomain:
      case common::dns::Status::kNoData:
        out.status = TxtLookup::Status::kNoRecord;
        break;
      default:
        out.status = TxtLookup::Status::kTempError;
    }
    return out;
  };
  l.nonexistent = [r](const std::string& name) {
    return r && r->lookup_a(name).status == common::dns::Status::kNxDomain;
  };
  return l;
}

common::spf::Outcome DmarcService::check_spf(const common::spf::Request& request) {
  if (!spf_) {
    common::spf::Outcome o;
    o.result = common::spf::Result::kTemperror;
    o.problem = "resolver not running";
    return o;
  }
  return spf_->check_host(request);
}

void DmarcService::record_aggregate(const Published& policy, const Row& row) {
  if (!aggregates_) return;
  try {
    aggregates_->record(policy, row, static_cast<std::int64_t>(std::time(nullptr)));
  } catch (const common::redis::Error& ex) {
    // Best effort: the message itself is never held up by reporting.
    aggregate_errors().inc();
    common::log::write(common::log::Level::kWarning,
                       std::string("dmarc aggregate data not stored: ") + ex.what());
  }
}

int DmarcService::random100() {
  if (random_) return random_();
  static thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<int>(rng() % 100);
}

}  // namespace mxguard::milter::dmarc
