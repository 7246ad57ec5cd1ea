// mxguard-authpolicy's service: the HTTP server, the Policy (replaced as a whole on SIGHUP), one
// decision log line per request (Dovecot's session id in place of a queue id) and the metrics.
// Must never answer a Dovecot request with anything but {"status":N,"msg":"…"} or an HTTP error
// status, and never let Redis trouble turn into a reject.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/daemon/daemon.h"
#include "common/health/redis_check.h"
#include "common/metrics/health.h"
#include "common/redis/batcher.h"
#include "common/redis/pool.h"
#include "policyd/authpolicy/options.h"
#include "policyd/authpolicy/policy.h"
#include "policyd/authpolicy/server.h"

namespace mxguard::policyd::authpolicy {

class AuthPolicyService : public common::daemon::Service<Options> {
 public:
  explicit AuthPolicyService(const Options& o,
                             common::ratelimit::Clock clock = common::ratelimit::system_clock_ms);
  ~AuthPolicyService() override;
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;
  // "redis": the counters live there (without it every login is allowed).
  void add_health_checks(common::metrics::Health& health) override;

  // One request, as the server hands it over: answered through `reply`, at once or (an allow
  // that needs Redis) from a batcher thread when the Redis replies arrive.
  void handle_async(std::string_view command, std::string_view body, HttpReply reply);
  // handle_async(), waiting for the answer: for the fuzz target and tests.
  HttpAnswer handle(std::string_view command, std::string_view body);
  int tcp_port() const { return server_->tcp_port(); }

 private:
  std::shared_ptr<Policy> current() const;
  // Created on first use, after the daemon forked (threads do not survive a fork).
  common::redis::Batcher& batcher();
  void log_decision(const AuthRequest& req, const Verdict& v,
                    std::chrono::steady_clock::time_point started);
  // Async reports: a bounded queue and one worker that counts them in pipelined batches. The
  // worker starts in serve() (after the daemon forked) and drains the queue when serve() ends.
  bool enqueue_report(AuthRequest req);
  void report_worker();
  void stop_reports();

  Options options_;
  common::ratelimit::Clock clock_;
  std::unique_ptr<common::redis::Pool> redis_;
  common::health::RedisCheck redis_check_;
  mutable std::mutex mutex_;
  std::shared_ptr<Policy> policy_;
  std::unique_ptr<HttpServer> server_;

  const std::size_t report_queue_limit_;  // fixed at start (reload keeps it)
  const bool async_reports_;
  std::mutex reports_mutex_;
  std::condition_variable reports_ready_;
  std::deque<std::pair<AuthRequest, std::chrono::steady_clock::time_point>> reports_;
  bool reports_running_ = false;
  bool reports_stopping_ = false;
  std::thread reports_thread_;

  // Carries the allows' Redis reads. As many writers as HTTP threads (as many round trips in
  // flight as the blocking calls had), and at least --redis-breaker-threshold, so that a
  // stalled Redis trips the breaker in the first round of timeouts instead of calls queued
  // behind them waiting a second round; at most --redis-pool-size. Last member: destroyed
  // first, before the pool and the server it answers through.
  const std::size_t redis_writers_;
  std::once_flag batcher_once_;
  std::unique_ptr<common::redis::Batcher> batcher_;
};

// {"status":N,"msg":"…"}
std::string answer_json(int status, std::string_view msg);

}  // namespace mxguard::policyd::authpolicy
