// Implementation of mxguard-policyd's service (see policy_service.h).
#include "policyd/policy_service.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <map>

#include "common/authres/seal.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/host.h"

namespace mxguard::policyd {
namespace {

namespace metrics = common::metrics;

constexpr std::size_t kMaxMessages = 20000;  // per-message states kept (oldest dropped first)

// Looked up once per (check, result) pair: the registry's own lookup takes a lock and renders
// labels, which is too much for every request.
metrics::Counter& decisions(const std::string& check, const std::string& result) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, std::string>, metrics::Counter*> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[{check, result}];
  if (slot == nullptr) {
    slot = &metrics::Registry::global().counter("mxguard_policyd_decisions_total",
                                                "Policy decisions by check and result",
                                                {{"check", check}, {"result", result}});
  }
  return *slot;
}

metrics::Counter& spf_results(const std::string& identity, const std::string& result) {
  return metrics::Registry::global().counter("mxguard_spf_results_total", "SPF results by identity",
                                             {{"identity", identity}, {"result", result}});
}

metrics::Counter& internal_errors(const std::string& where) {
  return metrics::Registry::global().counter(
      "mxguard_policyd_internal_errors_total",
      "Requests answered without finishing their checks (internal error, shutdown)",
      {{"where", where}});
}

// Cached per (outcome, reason), as decisions() is: bumped on every request in suspicious mode.
metrics::Counter& selections(const std::string& outcome, const std::string& reason) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, std::string>, metrics::Counter*> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[{outcome, reason}];
  if (slot == nullptr) {
    slot = &metrics::Registry::global().counter(
        "mxguard_policyd_greylist_selection_total",
        "Selective greylisting: requests greylisted (applied) or not (skipped), by reason",
        {{"outcome", outcome}, {"reason", reason}});
  }
  return *slot;
}

metrics::Histogram& latency() {
  static auto& h = metrics::Registry::global().histogram("mxguard_policyd_request_seconds",
                                                         "Time to answer one policy request",
                                                         metrics::latency_buckets());
  return h;
}

std::string client_field(const common::policy::Request& r) {
  std::string name(r.get("client_name"));
  return (name.empty() ? "unknown" : name) + "[" + std::string(r.client_address()) + "]";
}

std::string kind_name(Decision::Kind k) {
  switch (k) {
    case Decision::Kind::kPass:
      return "pass";
    case Decision::Kind::kGreylist:
      return "greylist";
    case Decision::Kind::kWhitelisted:
      return "whitelist";
    case Decision::Kind::kError:
      return "error";
    case Decision::Kind::kSkipped:
      return "skipped";
  }
  return "error";
}

// An SPF identity is checked only when it is a usable domain: a HELO that is an address
// literal or a single label gives "none" without DNS (RFC 7208 §2.3, §4.3).
bool checkable_helo(const std::string& helo) {
  return !helo.empty() && helo.front() != '[' && helo.find('.') != std::string::npos;
}

}  // namespace

// One request on its way through the checks.
struct PolicyService::Run {
  common::policy::Request req;
  common::policy::Reply reply;
  std::shared_ptr<const Checks> checks;
  common::net::IpAddress client;
  std::chrono::steady_clock::time_point started;
  std::size_t next = 0;     // index into checks->options.checks
  std::string spf_summary;  // for the log line
  std::string spf_domain;   // MAIL FROM domain that passed SPF
  bool first_rcpt = true;   // first request of this message
  std::string check_label;  // the log's check= when no configured check decided
  std::optional<common::spf::Result> spf_result;  // for selective greylisting
  // Selective greylisting, for the log: "applied" or "skipped", and why ("dnsbl:zen.example").
  // Empty when the policy is inactive (the log line is then as it always was).
  std::string greylist_outcome;
  std::string selection;
};

PolicyService::PolicyService(const Options& o, Clock clock)
    : options_(o), clock_(std::move(clock)), redis_check_(o.redis) {
  redis_ = std::make_unique<common::redis::Pool>(options_.redis);
  checks_ = build(options_);
  common::policy::ServerOptions so;
  so.listen.push_back(common::net::SocketSpec::parse(options_.daemon.listen));
  so.threads = options_.threads;
  so.max_connections = options_.max_connections;
  so.idle_timeout = options_.idle_timeout.value;
  // An internal error must not reject mail: answer as a store error would.
  so.error_action = options_.greylist.on_store_error == "defer"
                        ? "DEFER_IF_PERMIT 4.3.0 Service temporarily unavailable"
                        : "DUNNO";
  server_ = std::make_unique<common::policy::Server>(
      so,
      common::policy::AsyncHandler([this](common::policy::Request r, common::policy::Reply reply) {
        handle_async(std::move(r), std::move(reply));
      }));
}

PolicyService::~PolicyService() {
  // Outstanding SPF checks call back into us. With stopping_ set they start no new lookup and
  // answer at once; destroying the resolver runs the callbacks of lookups in flight (kError),
  // then the workers they posted to drain, and only then does the evaluator go.
  stopping_ = true;
  resolver_.reset();
  if (workers_) workers_->join();
  // After the workers (an SPF continuation may still queue a greylist call); fails what is
  // queued, and after_greylist() answers those at once.
  batcher_.reset();
  evaluator_.reset();
}

std::shared_ptr<const Checks> PolicyService::build(const Options& o) {
  auto c = std::make_shared<Checks>();
  c->options = o;
  c->trusted = common::net::NetworkList(o.trusted_networks);
  std::vector<std::string> skip = o.spf.skip_addresses;
  skip.insert(skip.end(), o.spf.whitelist.begin(), o.spf.whitelist.end());
  c->spf_skip = common::net::NetworkList(skip);
  c->greylist = std::make_unique<Greylister>(o.greylist, *redis_, clock_);
  c->selection = parse_selection(o.selection);
  if (!c->selection.dnsbl.empty() && !c->selection.wants_dnsbl()) {
    // Valid (a configuration prepared before switching modes), but easy to mistake for active.
    common::log::warning(
        "greylist-dnsbl-sites is not consulted: it needs greylist-mode = suspicious with dnsbl "
        "in greylist-suspicious-when");
  }
  if (std::find(o.checks.begin(), o.checks.end(), "ratelimit") != o.checks.end()) {
    c->ratelimit = std::make_unique<RateLimiter>(o.ratelimit, *redis_,
                                                 [clock = clock_] { return clock() * 1000; });
  }
  c->receiver = o.spf.authserv_id.empty() ? common::util::host_name() : o.spf.authserv_id;
  if (o.spf.header == "authentication-results" || o.spf.header == "both") {
    c->hop_secret = common::authres::configured_hop_secret(o.spf.hop_secret_file);
    if (!c->hop_secret) {
      common::log::warning("no hop secret (" + o.spf.hop_secret_file +
                           "): the SPF Authentication-Results header is not sealed, and "
                           "mxguard-dkim or -dmarc will delete it as forged");
    }
  }
  return c;
}

std::shared_ptr<const Checks> PolicyService::current() const {
  std::lock_guard lock(mutex_);
  return checks_;
}

common::spf::Evaluator& PolicyService::evaluator() {
  std::call_once(lazy_once_, [this] {
    resolver_ = std::make_unique<common::dns::Resolver>(options_.dns);
    common::spf::Limits limits;
    limits.timeout = options_.spf.timeout.value;
    evaluator_ = std::make_unique<common::spf::Evaluator>(*resolver_, limits);
    workers_ = std::make_unique<boost::asio::thread_pool>(2);
  });
  return *evaluator_;
}

boost::asio::thread_pool& PolicyService::workers() {
  evaluator();
  return *workers_;
}

void PolicyService::add_health_checks(common::metrics::Health& health) {
  health.add("redis", [this] {
    const auto& names = current()->options.checks;  // follows --checks across reloads
    bool redis = std::any_of(names.begin(), names.end(), [](const std::string& c) {
      return c == "greylist" || c == "ratelimit";
    });
    return redis ? redis_check_() : common::metrics::Health::Result::good();
  });
}

void PolicyService::open() { server_->open(); }
void PolicyService::serve() { server_->serve(); }
void PolicyService::stop() { server_->stop(); }

void PolicyService::reload(const Options& fresh) {
  if (fresh.daemon.listen != options_.daemon.listen || fresh.redis.url != options_.redis.url ||
      fresh.dns.servers != options_.dns.servers) {
    common::log::warning(
        "reload: listen, redis-url and dns-servers changes need a restart; kept the old ones");
  }
  Options next = options_;
  next.trusted_networks = fresh.trusted_networks;
  next.checks = fresh.checks;
  next.greylist = fresh.greylist;
  next.selection = fresh.selection;
  next.spf = fresh.spf;
  next.ratelimit = fresh.ratelimit;
  auto checks = build(next);  // throws on a bad whitelist: the old checks stay in force
  std::lock_guard lock(mutex_);
  checks_ = std::move(checks);
  options_ = std::move(next);
}

std::string PolicyService::pop_header(const std::string& instance) {
  std::lock_guard lock(messages_mutex_);
  auto it = messages_.find(instance);
  if (it == messages_.end() || it->second.headers.empty()) return "";
  std::string h = std::move(it->second.headers.front());
  it->second.headers.pop_front();
  return h;
}

MessageState& PolicyService::message_state(const std::string& instance) {
  auto [it, inserted] = messages_.try_emplace(instance);
  if (inserted) {
    it->second.created = clock_();
    message_order_.push_back(instance);
    // Bounded: the oldest messages' state goes first (deferred or rejected messages never
    // come back for their headers).
    while (message_order_.size() > kMaxMessages) {
      if (message_order_.front() != instance) messages_.erase(message_order_.front());
      message_order_.pop_front();
    }
  }
  return it->second;
}

void PolicyService::push_headers(const std::string& instance,
                                 const std::vector<std::string>& headers) {
  std::lock_guard lock(messages_mutex_);
  auto& st = message_state(instance);
  for (const auto& h : headers) st.headers.push_back(h);
}

void PolicyService::finish(const std::shared_ptr<Run>& run, const std::string& action,
                           const std::string& result, const std::string& reason, long age) {
  const auto& req = run->req;
  std::string check = !run->check_label.empty() ? run->check_label
                      : run->next < run->checks->options.checks.size()
                          ? run->checks->options.checks[run->next]
                          : "all";
  decisions(check, result).inc();
  latency().observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run->started).count());
  if (!run->greylist_outcome.empty()) {
    // Selective greylisting: reason= says why greylisting was applied or skipped; what the
    // greylist check itself found (new, early-retry, triplet passed, …) follows as detail=.
    bool applied = run->greylist_outcome == "applied";
    common::log::OwnedFields fields{{"check", check},
                                    {"result", result},
                                    {"action", action},
                                    {"client", client_field(req)},
                                    {"sender", "<" + std::string(req.sender()) + ">"},
                                    {"recipient", "<" + std::string(req.recipient()) + ">"},
                                    {"helo", std::string(req.get("helo_name"))},
                                    {"spf", run->spf_summary.empty() ? "-" : run->spf_summary},
                                    {"greylist", run->greylist_outcome},
                                    {"reason", run->selection}};
    if (applied) fields.emplace_back("detail", reason);
    fields.emplace_back("age", age >= 0 ? std::to_string(age) : "-");
    common::log::decision(req.queue_id(), fields);
    run->reply(action);
    return;
  }
  common::log::decision(req.queue_id(), {{"check", check},
                                         {"result", result},
                                         {"action", action},
                                         {"client", client_field(req)},
                                         {"sender", "<" + std::string(req.sender()) + ">"},
                                         {"recipient", "<" + std::string(req.recipient()) + ">"},
                                         {"helo", req.get("helo_name")},
                                         {"spf", run->spf_summary.empty() ? "-" : run->spf_summary},
                                         {"reason", reason},
                                         {"age", age >= 0 ? std::to_string(age) : "-"}});
  run->reply(action);
}

void PolicyService::handle_async(common::policy::Request request, common::policy::Reply reply) {
  auto run = std::make_shared<Run>();
  run->req = std::move(request);
  const common::policy::Request& req = run->req;
  run->reply = std::move(reply);
  run->checks = current();
  run->started = std::chrono::steady_clock::now();
  auto simple = [&](const std::string& check, const std::string& result,
                    const std::string& reason) {
    run->check_label = check;
    finish(run, "DUNNO", result, reason, -1);
  };

  std::string state(req.protocol_state());
  std::string instance(req.instance());
  if (state == "DATA") {
    // A policy reply carries one PREPEND; headers left over from RCPT time go out here.
    std::string h = instance.empty() ? "" : pop_header(instance);
    run->reply(h.empty() ? "DUNNO" : "PREPEND " + h);
    return;
  }
  // Outbound rate limits: messages at END-OF-MESSAGE, recipients at RCPT, for SASL users and
  // trusted relays, which every other check skips.
  // A decision that needs Redis comes back on a batcher thread (pipelined with other requests'
  // calls, as greylisting's), so no server thread waits on Redis for it either.
  auto rate_limited = [&](bool trusted) {
    auto answer = [this, run](const RateDecision& d) {
      run->check_label = "ratelimit";
      const char* result = d.kind == RateDecision::Kind::kOver    ? "over"
                           : d.kind == RateDecision::Kind::kError ? "error"
                                                                  : "pass";
      finish(run, d.action, result, d.subject + ": " + d.reason, -1);
    };
    auto now = run->checks->ratelimit->check_async(req, trusted, batcher(), answer);
    if (!now) return true;  // answered later, by `answer`
    if (now->kind == RateDecision::Kind::kNotApplicable) return false;
    answer(*now);
    return true;
  };
  if (state == "END-OF-MESSAGE" && run->checks->ratelimit) {
    auto client = common::net::IpAddress::parse(req.client_address());
    bool trusted = client && run->checks->trusted.contains(*client);
    if (rate_limited(trusted)) return;
    run->reply("DUNNO");
    return;
  }
  if (state != "RCPT") {
    run->reply("DUNNO");
    return;
  }
  if (!req.has("client_address") || !req.has("sender") || !req.has("recipient")) {
    common::log::warning(std::string(req.queue_id().empty() ? "NOQUEUE" : req.queue_id()) +
                         ": policy request without client_address, sender or recipient");
    return simple("request", "invalid", "missing attribute");
  }
  auto client = common::net::IpAddress::parse(req.client_address());
  if (!client) return simple("request", "invalid", "client_address is not an IP address");
  run->client = *client;
  bool trusted = run->checks->trusted.contains(*client);
  bool authenticated = !req.get("sasl_username").empty();
  if ((trusted || authenticated) && run->checks->ratelimit && rate_limited(trusted)) return;
  if (trusted) return simple("skip", "trusted", "trusted network");
  if (authenticated) return simple("skip", "authenticated", "SASL authenticated");
  next_check(run);
}

void PolicyService::next_check(std::shared_ptr<Run> run) {
  const auto& names = run->checks->options.checks;
  std::string instance(run->req.instance());
  while (run->next < names.size()) {
    const std::string& name = names[run->next];
    if (name == "spf") {
      if (run->checks->spf_skip.contains(run->client)) {
        run->spf_summary = "skipped";
        ++run->next;
        continue;
      }
      bool cached = false;
      if (!instance.empty()) {
        std::lock_guard lock(messages_mutex_);
        auto it = messages_.find(instance);
        if (it != messages_.end() && it->second.spf_done) {
          cached = true;
          run->first_rcpt = false;
          run->spf_summary = it->second.spf.summary;
          run->spf_domain = it->second.spf.passed_domain;
          run->spf_result = it->second.spf.result;
          if (!it->second.spf.action.empty()) {
            std::string action = it->second.spf.action;
            // Same verdict for every recipient of a rejected message.
            return finish(run, action, "reject", "SPF (cached for this message)", -1);
          }
        }
      }
      if (cached) {
        ++run->next;
        continue;
      }
      return run_spf(run);  // continues in next_check() once the checks are done
    }
    if (name == "greylist") {
      if (run->checks->selection.active()) return start_greylist(run);
      // The Redis call is pipelined with other requests' (common/redis/batcher.h); no server
      // thread waits for it. after_greylist() continues, on the batcher's thread.
      return run->checks->greylist->check_async(
          run->req, run->client, run->spf_domain, batcher(),
          [this, run](Decision d) { after_greylist(run, std::move(d)); });
    }
    ++run->next;
  }
  std::string h = instance.empty() ? "" : pop_header(instance);
  if (!names.empty()) run->next = names.size() - 1;
  finish(run, h.empty() ? "DUNNO" : "PREPEND " + h, "pass", "all checks passed", -1);
}

void PolicyService::start_greylist(const std::shared_ptr<Run>& run) {
  const SelectionPolicy& p = run->checks->selection;
  static const std::vector<DnsListSite> kNone;
  const auto& dnsbl = p.wants_dnsbl() ? p.dnsbl : kNone;
  const auto& dnswl = p.wants_dnswl() ? p.dnswl : kNone;
  if (dnsbl.empty() && dnswl.empty()) return select_and_greylist(run, ListHits{});
  evaluator();  // creates the resolver and the workers on first use
  if (stopping_) return after_greylist(run, Decision{Decision::Kind::kSkipped, "DUNNO", "", -1});
  // Always continues on a worker (never on the resolver's thread, never inside this call).
  lookup_lists(*resolver_, workers(), run->client, dnsbl, dnswl, std::string(run->req.queue_id()),
               [this, run](ListHits hits) {
                 if (stopping_) {
                   internal_errors("shutdown").inc();
                   common::log::warning(
                       std::string(run->req.queue_id().empty() ? "NOQUEUE" : run->req.queue_id()) +
                       ": DNS list check abandoned at shutdown, action=DUNNO");
                   run->reply("DUNNO");
                   return;
                 }
                 try {
                   select_and_greylist(run, hits);
                 } catch (const std::exception& ex) {
                   internal_errors("greylist").inc();
                   common::log::error(
                       std::string(run->req.queue_id().empty() ? "NOQUEUE" : run->req.queue_id()) +
                       ": greylist selection failed: " + ex.what());
                   run->reply(run->checks->options.greylist.on_store_error == "defer"
                                  ? "DEFER_IF_PERMIT 4.3.0 Service temporarily unavailable"
                                  : "DUNNO");
                 }
               });
}

void PolicyService::select_and_greylist(const std::shared_ptr<Run>& run, const ListHits& hits) {
  SelectionInputs in;
  in.spf = spf_input(run->spf_result);
  if (in.spf == SpfInput::kPass) in.spf_pass_domain = run->spf_domain;
  in.helo = std::string(run->req.get("helo_name"));
  in.lists = hits;
  Selection s = select_greylisting(run->checks->selection, in);
  run->greylist_outcome = s.greylist ? "applied" : "skipped";
  run->selection = s.label();
  selections(run->greylist_outcome, std::string(s.reason_name())).inc();
  if (!s.greylist) {
    return after_greylist(run, Decision{Decision::Kind::kSkipped, "DUNNO", s.label(), -1});
  }
  run->checks->greylist->check_async(
      run->req, run->client, run->spf_domain, batcher(),
      [this, run](Decision d) { after_greylist(run, std::move(d)); });
}

void PolicyService::after_greylist(const std::shared_ptr<Run>& run, Decision d) {
  if (stopping_) {
    // Shutting down: no further check may start (the resolver is gone); never silently. A
    // greylist or store-error verdict stands; a pass skips the checks after it.
    bool stands = d.kind == Decision::Kind::kGreylist || d.kind == Decision::Kind::kError;
    std::string action = stands ? d.action : "DUNNO";
    internal_errors("shutdown").inc();
    common::log::warning(
        std::string(run->req.queue_id().empty() ? "NOQUEUE" : run->req.queue_id()) +
        ": greylist check finished at shutdown, later checks skipped, action=" + action);
    run->reply(action);
    return;
  }
  try {
    const auto& names = run->checks->options.checks;
    std::string instance(run->req.instance());
    if (d.kind == Decision::Kind::kGreylist ||
        (d.kind == Decision::Kind::kError && d.action != "DUNNO")) {
      return finish(run, d.action, kind_name(d.kind), d.reason, d.age);
    }
    if (d.action.rfind("PREPEND ", 0) == 0 && !instance.empty()) {
      push_headers(instance, {d.action.substr(8)});
    }
    ++run->next;
    if (run->next == names.size()) {
      std::string action = d.action;
      if (!instance.empty()) {
        std::string h = pop_header(instance);
        action = h.empty() ? "DUNNO" : "PREPEND " + h;
      }
      --run->next;  // log under the last check
      return finish(run, action, kind_name(d.kind), d.reason, d.age);
    }
    next_check(run);
  } catch (const std::exception& ex) {
    // Never lose the request: answer as the server would for a failed handler.
    internal_errors("greylist").inc();
    common::log::error(std::string(run->req.queue_id().empty() ? "NOQUEUE" : run->req.queue_id()) +
                       ": greylist continuation failed: " + ex.what());
    run->reply(run->checks->options.greylist.on_store_error == "defer"
                   ? "DEFER_IF_PERMIT 4.3.0 Service temporarily unavailable"
                   : "DUNNO");
  }
}

common::redis::Batcher& PolicyService::batcher() {
  std::call_once(batcher_once_, [this] {
    batcher_ = std::make_unique<common::redis::Batcher>(
        *redis_, common::redis::Batcher::Options{.writers = options_.redis_writers});
  });
  return *batcher_;
}

void PolicyService::run_spf(std::shared_ptr<Run> run) {
  auto results = std::make_shared<SpfResults>();
  results->client = run->client;
  results->helo_name = std::string(run->req.get("helo_name"));
  results->sender = std::string(run->req.sender());
  const SpfOptions& o = run->checks->options.spf;
  bool null_sender = results->sender.empty();
  bool want_helo = o.helo_reject != "no-check" || null_sender;
  bool want_mail_from = !null_sender && o.mail_from_reject != "no-check";

  evaluator();  // creates the resolver on first use
  // Captures by value: the steps below run after run_spf() has returned.
  auto base = [run, results] {
    common::spf::Request r;
    r.ip = run->client;
    r.helo = results->helo_name;
    r.receiver = run->checks->receiver;
    return r;
  };
  // The continuation runs on a worker (never on the resolver's thread: greylisting blocks on
  // Redis there).
  auto done = [this, run, results] {
    boost::asio::post(workers(), [this, run, results] {
      if (stopping_) {
        // Shutting down with this check in flight: accept, but never silently.
        internal_errors("shutdown").inc();
        common::log::warning(
            std::string(run->req.queue_id().empty() ? "NOQUEUE" : run->req.queue_id()) +
            ": SPF check abandoned at shutdown, action=DUNNO");
        run->reply("DUNNO");
        return;
      }
      try {
        SpfVerdict v = decide(run->checks->options.spf, *results, run->checks->receiver);
        if (results->helo)
          spf_results("helo", std::string(common::spf::result_name(results->helo->result))).inc();
        if (results->mail_from) {
          spf_results("mailfrom", std::string(common::spf::result_name(results->mail_from->result)))
              .inc();
        }
        run->spf_summary = v.summary;
        run->spf_domain = v.passed_domain;
        run->spf_result = v.result;
        std::string instance(run->req.instance());
        if (!instance.empty()) {
          std::lock_guard lock(messages_mutex_);
          auto& st = message_state(instance);
          st.spf_done = true;
          st.spf = v;
          if (v.action.empty()) {
            for (std::string h : v.headers) {
              // Sealed (for no particular queue id: Postfix may not have one yet at RCPT), so
              // mxguard-dkim and -dmarc keep it instead of deleting it as forged.
              static constexpr std::string_view kAr = "Authentication-Results:";
              if (run->checks->hop_secret && h.starts_with(kAr)) {
                h = std::string(kAr) +
                    common::authres::add_seal(h.substr(kAr.size()), *run->checks->hop_secret, "");
              }
              st.headers.push_back(std::move(h));
            }
          }
        }
        if (!v.action.empty()) return finish(run, v.action, "reject", "SPF", -1);
        ++run->next;
        next_check(run);
      } catch (const std::exception& ex) {
        internal_errors("spf").inc();
        common::log::error(
            std::string(run->req.queue_id().empty() ? "NOQUEUE" : run->req.queue_id()) +
            ": spf: internal error, action per greylist-on-store-error: " + ex.what());
        run->reply(run->checks->options.greylist.on_store_error == "defer"
                       ? "DEFER_IF_PERMIT 4.3.0 Service temporarily unavailable"
                       : "DUNNO");
      }
    });
  };
  auto mail_from_step = [this, results, want_mail_from, base, done]() {
    if (!want_mail_from || stopping_) return done();
    common::spf::Request r = base();
    r.sender = results->sender;
    r.domain = domain_of(results->sender);
    if (r.domain.empty()) {
      common::spf::Outcome none;
      none.result = common::spf::Result::kNone;
      none.problem = "sender without a domain";
      results->mail_from = none;
      return done();
    }
    evaluator().check_host_async(std::move(r), [results, done](common::spf::Outcome o) {
      results->mail_from = std::move(o);
      done();
    });
  };
  auto helo_step = [this, results, want_helo, base, mail_from_step]() {
    if (want_helo) {
      if (!checkable_helo(results->helo_name)) {
        common::spf::Outcome none;
        none.result = common::spf::Result::kNone;
        none.problem = "HELO is not a domain name";
        results->helo = none;
        return mail_from_step();
      }
      common::spf::Request r = base();
      r.sender = "postmaster@" + results->helo_name;
      r.domain = results->helo_name;
      evaluator().check_host_async(std::move(r), [results, mail_from_step](common::spf::Outcome o) {
        results->helo = std::move(o);
        mail_from_step();
      });
      return;
    }
    mail_from_step();
  };
  // --spf-domain-whitelist: a client that passes SPF for one of these domains is not checked
  // further (pypolicyd-spf's Domain_Whitelist). Tried one after the other, asynchronously.
  auto domains = std::make_shared<std::vector<std::string>>(o.domain_whitelist);
  auto step = std::make_shared<std::function<void(std::size_t)>>();
  std::weak_ptr<std::function<void(std::size_t)>> weak = step;
  *step = [this, results, domains, base, helo_step, done, weak](std::size_t i) {
    auto self = weak.lock();
    if (stopping_ || i >= domains->size() || !self) return helo_step();
    common::spf::Request r = base();
    r.domain = (*domains)[i];
    r.sender = "postmaster@" + r.domain;
    evaluator().check_host_async(std::move(r),
                                 [results, domains, i, self, done](common::spf::Outcome out) {
                                   if (out.result == common::spf::Result::kPass) {
                                     results->whitelisted_by = (*domains)[i];
                                     return done();
                                   }
                                   (*self)(i + 1);
                                 });
  };
  (*step)(0);
}

std::string PolicyService::handle(const common::policy::Request& req) {
  auto promise = std::make_shared<std::promise<std::string>>();
  auto future = promise->get_future();
  handle_async(req, [promise](std::string action) { promise->set_value(std::move(action)); });
  return future.get();
}

}  // namespace mxguard::policyd
