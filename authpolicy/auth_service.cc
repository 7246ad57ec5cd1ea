// Implementation of mxguard-authpolicy's service (see auth_service.h).
#include "authpolicy/auth_service.h"

#include <map>

#include <nlohmann/json.hpp>

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::authpolicy {
namespace {

namespace metrics = common::metrics;

metrics::Counter& decisions(std::string_view command, const std::string& result) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, std::string>, metrics::Counter*> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[{std::string(command), result}];
  if (slot == nullptr) {
    slot = &metrics::Registry::global().counter(
        "mxguard_authpolicy_decisions_total", "Auth-policy decisions by command and result",
        {{"command", std::string(command)}, {"result", result}});
  }
  return *slot;
}

metrics::Histogram& latency() {
  static auto& h = metrics::Registry::global().histogram(
      "mxguard_authpolicy_request_seconds", "Time to decide one auth-policy request",
      metrics::latency_buckets());
  return h;
}


}  // namespace

std::string answer_json(int status, std::string_view msg) {
  nlohmann::json j;
  j["status"] = status;
  j["msg"] = std::string(msg);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

AuthPolicyService::AuthPolicyService(const Options& o, common::ratelimit::Clock clock)
    : options_(o), clock_(std::move(clock)) {
  redis_ = std::make_unique<common::redis::Pool>(options_.redis);
  policy_ = std::make_shared<Policy>(options_, *redis_, clock_);
  HttpOptions h;
  h.listen = common::net::SocketSpec::parse(options_.daemon.listen);
  h.threads = options_.threads;
  h.max_connections = options_.max_connections;
  h.idle_timeout = options_.idle_timeout.value;
  h.max_body_size = options_.max_body_size.bytes;
  h.max_header_size = options_.max_header_size.bytes;
  h.api_header = options_.api_header;
  server_ = std::make_unique<HttpServer>(
      h, [this](std::string_view command, std::string_view body) { return handle(command, body); });
  if (options_.api_header.empty()) {
    common::log::warning("api-header is empty: any local process may query and report");
  }
}

void AuthPolicyService::open() { server_->open(); }
void AuthPolicyService::serve() { server_->serve(); }
void AuthPolicyService::stop() { server_->stop(); }

void AuthPolicyService::reload(const Options& fresh) {
  if (fresh.daemon.listen != options_.daemon.listen || fresh.redis.url != options_.redis.url ||
      fresh.api_header != options_.api_header || fresh.threads != options_.threads) {
    common::log::warning(
        "reload: listen, redis-url, api-header and threads changes need a restart; kept the old "
        "ones");
  }
  Options next = fresh;
  next.daemon = options_.daemon;
  next.redis = options_.redis;
  next.api_header = options_.api_header;
  next.threads = options_.threads;
  next.max_connections = options_.max_connections;
  next.idle_timeout = options_.idle_timeout;
  next.max_body_size = options_.max_body_size;
  next.max_header_size = options_.max_header_size;
  auto policy = std::make_shared<Policy>(next, *redis_, clock_);
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
  options_ = std::move(next);
}

std::shared_ptr<Policy> AuthPolicyService::current() const {
  std::lock_guard lock(mutex_);
  return policy_;
}

HttpAnswer AuthPolicyService::handle(std::string_view command, std::string_view body) {
  auto started = std::chrono::steady_clock::now();
  AuthRequest req;
  try {
    req = parse_request(command, body);
  } catch (const RequestError& ex) {
    decisions(command == "allow" || command == "report" ? command : "invalid", "invalid").inc();
    common::log::warning(std::string("authpolicy: invalid request: ") + ex.what());
    return {400, nlohmann::json{{"error", ex.what()}}.dump()};
  }
  Verdict v = current()->decide(req);
  decisions(command_name(req.command), v.result).inc();
  latency().observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (v.result == "store-error") {
    common::log::warning(std::string(req.session_id.empty() ? "NOQUEUE" : req.session_id) +
                         ": Redis unavailable, login allowed: " + v.reason);
  }
  std::string success = req.command == AuthRequest::Command::kReport
                            ? (req.success ? "yes" : "no")
                            : "-";
  common::log::decision(req.session_id, {{"command", command_name(req.command)},
                                         {"result", v.result},
                                         {"status", std::to_string(v.status)},
                                         {"remote", req.remote.empty() ? "-" : req.remote},
                                         {"login", req.login.empty() ? "-" : req.login},
                                         {"protocol", req.protocol.empty() ? "-" : req.protocol},
                                         {"success", success},
                                         {"reason", v.reason}});
  return {200, answer_json(v.status, v.msg)};
}

}  // namespace mxguard::authpolicy
