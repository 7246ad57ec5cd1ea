// Implementation of mxguard-policyd's service (see policy_service.h).
#include "policyd/policy_service.h"

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::policyd {
namespace {

namespace metrics = common::metrics;

metrics::Counter& decisions(const std::string& check, const std::string& result) {
  return metrics::Registry::global().counter("mxguard_policyd_decisions_total",
                                             "Policy decisions by check and result",
                                             {{"check", check}, {"result", result}});
}

metrics::Histogram& latency() {
  static auto& h = metrics::Registry::global().histogram(
      "mxguard_policyd_request_seconds", "Time to answer one policy request",
      metrics::latency_buckets());
  return h;
}

std::string client_field(const common::policy::Request& r) {
  std::string name(r.get("client_name"));
  return (name.empty() ? "unknown" : name) + "[" + std::string(r.client_address()) + "]";
}

std::string kind_name(Decision::Kind k) {
  switch (k) {
    case Decision::Kind::kPass: return "pass";
    case Decision::Kind::kGreylist: return "greylist";
    case Decision::Kind::kWhitelisted: return "whitelist";
    case Decision::Kind::kError: return "error";
  }
  return "error";
}

}  // namespace

PolicyService::PolicyService(const Options& o, Clock clock)
    : options_(o), clock_(std::move(clock)) {
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
      so, [this](const common::policy::Request& r) { return handle(r); });
}

std::shared_ptr<const Checks> PolicyService::build(const Options& o) {
  auto c = std::make_shared<Checks>();
  c->trusted = common::net::NetworkList(o.trusted_networks);
  c->order = o.checks;
  c->greylist = std::make_unique<Greylister>(o.greylist, *redis_, clock_);
  return c;
}

std::shared_ptr<const Checks> PolicyService::current() const {
  std::lock_guard lock(mutex_);
  return checks_;
}

void PolicyService::open() { server_->open(); }
void PolicyService::serve() { server_->serve(); }
void PolicyService::stop() { server_->stop(); }

void PolicyService::reload(const Options& fresh) {
  if (fresh.daemon.listen != options_.daemon.listen || fresh.redis.url != options_.redis.url) {
    common::log::warning("reload: listen and redis-url changes need a restart; kept the old ones");
  }
  Options next = options_;
  next.trusted_networks = fresh.trusted_networks;
  next.checks = fresh.checks;
  next.greylist = fresh.greylist;
  auto checks = build(next);  // throws on a bad whitelist: the old checks stay in force
  std::lock_guard lock(mutex_);
  checks_ = std::move(checks);
  options_ = std::move(next);
}

std::string PolicyService::handle(const common::policy::Request& req) {
  auto started = std::chrono::steady_clock::now();
  auto checks = current();
  auto finish = [&](const std::string& check, const std::string& result,
                    const std::string& action, const std::string& reason, long age) {
    decisions(check, result).inc();
    latency().observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    std::string age_text = age >= 0 ? std::to_string(age) : "-";
    common::log::decision(req.queue_id(),
                          {{"check", check},
                           {"result", result},
                           {"action", action},
                           {"client", client_field(req)},
                           {"sender", "<" + std::string(req.sender()) + ">"},
                           {"recipient", "<" + std::string(req.recipient()) + ">"},
                           {"reason", reason},
                           {"age", age_text}});
    return action;
  };

  if (req.protocol_state() != "RCPT") return "DUNNO";
  if (!req.has("client_address") || !req.has("sender") || !req.has("recipient")) {
    common::log::warning(std::string(req.queue_id().empty() ? "NOQUEUE" : req.queue_id()) +
                         ": policy request without client_address, sender or recipient");
    return finish("request", "invalid", "DUNNO", "missing attribute", -1);
  }
  auto client = common::net::IpAddress::parse(req.client_address());
  if (!client) {
    return finish("request", "invalid", "DUNNO", "client_address is not an IP address", -1);
  }
  if (checks->trusted.contains(*client)) {
    return finish("skip", "trusted", "DUNNO", "trusted network", -1);
  }
  if (!req.get("sasl_username").empty()) {
    return finish("skip", "authenticated", "DUNNO", "SASL authenticated", -1);
  }
  for (const auto& name : checks->order) {
    if (name == "greylist") {
      // A store error is not logged here again: the Redis pool logs the outage once, and
      // the decision line below carries result=error with the reason.
      Decision d = checks->greylist->check(req, *client);
      return finish("greylist", kind_name(d.kind), d.action, d.reason, d.age);
    }
  }
  return finish("none", "pass", "DUNNO", "no check decided", -1);
}

}  // namespace mxguard::policyd
