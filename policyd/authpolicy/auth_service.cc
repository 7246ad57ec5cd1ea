// Implementation of mxguard-authpolicy's service (see auth_service.h).
#include "policyd/authpolicy/auth_service.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <nlohmann/json.hpp>

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::policyd::authpolicy {
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
  static auto& h = metrics::Registry::global().histogram("mxguard_authpolicy_request_seconds",
                                                         "Time to decide one auth-policy request",
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
    : options_(o),
      clock_(std::move(clock)),
      redis_check_(o.redis),
      report_queue_limit_(o.report_queue),
      async_reports_(o.async_reports),
      redis_writers_(
          std::clamp<std::size_t>(std::max<std::size_t>(o.threads, o.redis.breaker_threshold), 1,
                                  std::max<std::size_t>(o.redis.pool_size, 1))) {
  redis_ = std::make_unique<common::redis::Pool>(options_.redis);
  policy_ = std::make_shared<Policy>(options_, *redis_, clock_);
  HttpOptions h;
  h.listen = common::net::SocketSpec::parse(options_.daemon.listen);
  h.threads = options_.threads;
  h.max_connections = options_.max_connections;
  h.idle_timeout = options_.idle_timeout.value;
  h.max_body_size = options_.max_body_size.bytes;
  h.max_header_size = options_.max_header_size.bytes;
  h.api_header = options_.effective_api_header();
  server_ = std::make_unique<HttpServer>(
      h, [this](std::string_view command, std::string_view body, HttpReply reply) {
        handle_async(command, body, std::move(reply));
      });
  if (h.api_header.empty()) {
    common::log::warning("no api-header and no " + options_.api_header_file +
                         ": any local process may query and report");
  }
}

AuthPolicyService::~AuthPolicyService() { stop_reports(); }

void AuthPolicyService::open() { server_->open(); }

void AuthPolicyService::add_health_checks(common::metrics::Health& health) {
  health.add("redis", [this] { return redis_check_(); });
}

void AuthPolicyService::serve() {
  if (async_reports_) {
    std::lock_guard lock(reports_mutex_);
    reports_running_ = true;
    reports_thread_ = std::thread([this] { report_worker(); });
  }
  server_->serve();
  stop_reports();
}

void AuthPolicyService::stop() { server_->stop(); }

void AuthPolicyService::stop_reports() {
  {
    std::lock_guard lock(reports_mutex_);
    if (!reports_running_) return;
    reports_stopping_ = true;
  }
  reports_ready_.notify_all();
  if (reports_thread_.joinable()) reports_thread_.join();
  std::lock_guard lock(reports_mutex_);
  reports_running_ = false;
}

bool AuthPolicyService::enqueue_report(AuthRequest req) {
  {
    std::lock_guard lock(reports_mutex_);
    if (!reports_running_ || reports_stopping_) return false;
    if (reports_.size() >= report_queue_limit_) {
      static auto& dropped = metrics::Registry::global().counter(
          "mxguard_authpolicy_reports_dropped_total",
          "Reports not counted because --report-queue was full (Redis too slow)");
      dropped.inc();
      static std::atomic<std::int64_t> last_warning{0};
      auto now = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::steady_clock::now().time_since_epoch())
                     .count();
      if (now - last_warning.exchange(now) >= 10) {
        common::log::warning("report queue full: failed logins are not being counted");
      }
      return true;  // answered, not counted
    }
    reports_.emplace_back(std::move(req), std::chrono::steady_clock::now());
  }
  reports_ready_.notify_one();
  return true;
}

void AuthPolicyService::report_worker() {
  constexpr std::size_t kBatch = 128;
  while (true) {
    std::vector<AuthRequest> batch;
    std::vector<std::chrono::steady_clock::time_point> started;
    {
      std::unique_lock lock(reports_mutex_);
      reports_ready_.wait(lock, [this] { return reports_stopping_ || !reports_.empty(); });
      if (reports_.empty()) return;  // stopping, drained
      while (!reports_.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(reports_.front().first));
        started.push_back(reports_.front().second);
        reports_.pop_front();
      }
    }
    std::vector<Verdict> verdicts;
    try {
      verdicts = current()->report_batch(batch);
    } catch (const std::exception& ex) {
      common::log::error(std::string("authpolicy: counting reports failed: ") + ex.what());
      continue;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) log_decision(batch[i], verdicts[i], started[i]);
  }
}

void AuthPolicyService::reload(const Options& fresh) {
  if (fresh.daemon.listen != options_.daemon.listen || fresh.redis.url != options_.redis.url ||
      fresh.api_header != options_.api_header || fresh.threads != options_.threads) {
    common::log::warning(
        "reload: listen, redis-url, api-header, threads, HTTP limits and reports settings need a "
        "restart; kept the old ones");
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
  next.async_reports = options_.async_reports;
  next.report_queue = options_.report_queue;
  auto policy = std::make_shared<Policy>(next, *redis_, clock_);
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
  options_ = std::move(next);
}

std::shared_ptr<Policy> AuthPolicyService::current() const {
  std::lock_guard lock(mutex_);
  return policy_;
}

common::redis::Batcher& AuthPolicyService::batcher() {
  std::call_once(batcher_once_, [this] {
    batcher_ = std::make_unique<common::redis::Batcher>(
        *redis_, common::redis::Batcher::Options{.writers = redis_writers_});
  });
  return *batcher_;
}

void AuthPolicyService::handle_async(std::string_view command, std::string_view body,
                                     HttpReply reply) {
  auto started = std::chrono::steady_clock::now();
  AuthRequest req;
  try {
    req = parse_request(command, body);
  } catch (const RequestError& ex) {
    decisions(command == "allow" || command == "report" ? command : "invalid", "invalid").inc();
    common::log::warning(std::string("authpolicy: invalid request: ") + ex.what());
    return reply({400, nlohmann::json{{"error", ex.what()}}.dump()});
  }
  if (req.command == AuthRequest::Command::kReport && enqueue_report(req)) {
    return reply({200, answer_json(0, "")});
  }
  auto policy = current();
  if (req.command == AuthRequest::Command::kAllow) {
    // No server thread waits on Redis for an allow: its reads are pipelined with other
    // requests' and the answer goes out from the batcher's thread. `policy` stays alive until
    // then (a reload may replace it meanwhile).
    auto shared = std::make_shared<const AuthRequest>(std::move(req));
    policy->allow_async(*shared, batcher(),
                        [this, policy, shared, started, reply = std::move(reply)](
                            std::optional<Verdict> v, std::exception_ptr error) {
                          // On a batcher thread, which must not see an exception.
                          HttpAnswer answer;
                          try {
                            if (!v) std::rethrow_exception(error);
                            log_decision(*shared, *v, started);
                            answer = {200, answer_json(v->status, v->msg)};
                          } catch (const std::exception& ex) {
                            answer = internal_error(ex.what());
                          } catch (...) {
                            answer = internal_error("unknown exception");
                          }
                          reply(std::move(answer));
                        });
    return;
  }
  // A report counted before it is answered (async-reports = no, or at shutdown once the report
  // worker stopped) still waits on Redis here: its success branch resets the address's counters
  // with a call that has no asynchronous form, and Dovecot ignores the answer anyway.
  Verdict v = policy->decide(req);
  log_decision(req, v, started);
  reply({200, answer_json(v.status, v.msg)});
}

HttpAnswer AuthPolicyService::handle(std::string_view command, std::string_view body) {
  std::promise<HttpAnswer> promise;
  auto answer = promise.get_future();
  handle_async(command, body, [&promise](HttpAnswer a) { promise.set_value(std::move(a)); });
  return answer.get();
}

void AuthPolicyService::log_decision(const AuthRequest& req, const Verdict& v,
                                     std::chrono::steady_clock::time_point started) {
  decisions(command_name(req.command), v.result).inc();
  latency().observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (v.result == "store-error") {
    common::log::warning(std::string(req.session_id.empty() ? "NOQUEUE" : req.session_id) +
                         ": Redis unavailable, login allowed: " + v.reason);
  }
  std::string success =
      req.command == AuthRequest::Command::kReport ? (req.success ? "yes" : "no") : "-";
  common::log::decision(req.session_id, {{"command", command_name(req.command)},
                                         {"result", v.result},
                                         {"status", std::to_string(v.status)},
                                         {"remote", req.remote.empty() ? "-" : req.remote},
                                         {"login", req.login.empty() ? "-" : req.login},
                                         {"protocol", req.protocol.empty() ? "-" : req.protocol},
                                         {"success", success},
                                         {"reason", v.reason}});
}

}  // namespace mxguard::policyd::authpolicy
