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
#include "common/util/strings.h"
#include "milters/dmarc/decision.h"

namespace mxguard::milter::dmarc {

using common::mail::normalize_domain;
namespace {

using common::milter::Context;
using common::milter::Status;

using mxguard::common::util::iequals;

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
      shared_->authres.insert(shared_->authres.end(), ours.begin(), ours.end());
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

  // The DKIM and ARC results we believe: in a chain with a dkim filter, the typed results it
  // handed over; otherwise those of A-R headers sealed for this message at this hop.
  void trusted_results(Evaluated& ev) const {
    std::vector<AuthResult>& out = ev.dkim;
    auto take = [&out, &ev](const std::vector<common::authres::Result>& results) {
      for (const auto& r : results) {
        if (r.method == "arc") ev.arc = read_arc(r);
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
    };
    if (shared_ && shared_->dkim_verified) {
      take(shared_->authres);
    } else {
      for (const auto& value : trusted_values_) {
        if (auto h = common::authres::parse(value)) take(h->results);
      }
    }
  }

  // Carries out a decision (decision.h): counters, the reply or quarantine, our A-R header,
  // the aggregate row, the decision log line.
  Status apply(Context& c, const std::string& qid, const Decision& d) {
    if (!d.skipped.empty()) skipped_total(d.skipped.c_str()).inc();
    if (d.forged_rejected) forged_rejected().inc();
    if (!d.counted_result.empty()) results_total(d.counted_result).inc();
    Status st = Status::kAccept;
    switch (d.action) {
      case Decision::Action::kAccept:
        break;
      case Decision::Action::kReject:
        c.set_reply(d.rcode, d.xcode, d.text);
        st = Status::kReject;
        break;
      case Decision::Action::kTempfail:
        c.set_reply(d.rcode, d.xcode, d.text);
        st = Status::kTempfail;
        break;
      case Decision::Action::kHold:
        c.quarantine(d.hold_reason);
        break;
      case Decision::Action::kHeader:
        c.add_header(config_->quarantine_header_name, config_->quarantine_header_value);
        break;
    }
    if (!d.counted_action.empty()) actions_total(d.counted_action).inc();
    if (!d.authres.empty()) write_authres(c, d.authres);
    if (d.aggregate) service_.record_aggregate(d.aggregate->policy, d.aggregate->row);
    common::log::decision(qid, d.log);
    return st;
  }

  // Gathers what decision.h decides on: the From domains, our SPF check, the trusted DKIM
  // results and the DMARC evaluation; applies each decision.
  Status finish(Context& c, const std::string& qid) {
    const Options& o = config_->options;
    Message m;
    m.skip = skip_;
    m.client = client_;
    m.client_host = client_host_;
    m.envelope_from = envelope_from_;
    m.envelope_domain = domain_of(envelope_from_);
    m.forged_authres = forged_.size();
    if (auto d = screen(m, common::milter::kMaxHeaderDeletions)) return apply(c, qid, *d);
    remove_forged(c);
    Authors authors = read_authors(from_values_, from_headers_, o.max_from_addresses);
    if (auto d = judge_authors(m, authors, o)) return apply(c, qid, *d);

    // SPF on the envelope sender (HELO for the null sender): DMARC's SPF identity.
    Evaluated ev;
    AuthResult& spf = ev.spf;
    if (envelope_from_.empty() || m.envelope_domain.empty()) {
      ev.spf_scope = "helo";
      spf.domain = normalize_domain(helo_);
    } else {
      spf.domain = m.envelope_domain;
    }
    spf.result = "none";
    if (o.spf_self_check) {
      auto ip = common::net::IpAddress::parse(client_);
      if (ip && !spf.domain.empty()) {
        common::spf::Request req;
        req.ip = *ip;
        req.domain = spf.domain;
        req.sender = ev.spf_scope == "helo" ? "postmaster@" + spf.domain : envelope_from_;
        req.helo = helo_;
        req.receiver = config_->authserv_id;
        auto outcome = service_.check_spf(req);
        spf.result = std::string(common::spf::result_name(outcome.result));
      }
    }

    trusted_results(ev);
    Lookups lookups = service_.lookups();
    Evaluator evaluator(*config_->org, lookups, [this] { return service_.random100(); });
    std::vector<Evaluation> evaluations;
    for (const auto& d : authors.domains)
      evaluations.push_back(evaluator.evaluate(d, ev.dkim, spf));
    ev.evaluation = strictest(evaluations);
    return apply(c, qid, decide(m, ev, o));
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
    // True for a daemon of its own; in mxguard-milter the dkim filter of the same chain hands
    // its results over in process, which needs no secret (said so, or the line misleads).
    common::log::warning("no hop secret (" + o.hop_secret_file +
                         "): Authentication-Results headers cannot be trusted, so the DKIM and "
                         "ARC results of an mxguard-dkim daemon are not used (dkim=none for "
                         "DMARC); a dkim filter in the same mxguard-milter still hands its "
                         "results over");
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
  o.engine.apply(mo);
  engine_ = o.engine;
  milter_ = std::make_unique<common::milter::Milter>(mo, [this] { return new_session(); });
  if (o.aggregate_reports) {
    redis_ = std::make_unique<common::redis::Pool>(o.redis);
    aggregates_ = std::make_unique<AggregateStore>(*redis_, o.report_interval.seconds(),
                                                   o.report_retention.seconds());
    redis_check_ = std::make_unique<common::health::RedisCheck>(o.redis);
  }
}

void DmarcService::add_health_checks(common::metrics::Health& health) {
  if (redis_check_) health.add("redis", [this] { return (*redis_check_)(); });
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
