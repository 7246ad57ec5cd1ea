// mxguard-policyd's service: the policy server, the checks run in the configured order (SPF
// asynchronously on the shared resolver, greylisting on Redis), one decision log line per
// request with the queue id, and the per-message state (SPF results, headers still to
// prepend) keyed by Postfix's `instance` attribute. Trusted and SASL-authenticated clients
// are never checked. Must never answer anything but a valid action, and never let a failed
// dependency reject mail (store errors follow --greylist-on-store-error, DNS errors are SPF
// temperror results).
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/daemon/daemon.h"
#include "common/dns/resolver.h"
#include "common/health/redis_check.h"
#include "common/metrics/health.h"
#include "common/net/ip.h"
#include "common/policy/server.h"
#include "common/redis/pool.h"
#include "common/spf/spf.h"
#include "common/util/asio.h"
#include "policyd/greylist.h"
#include "policyd/greylist_selector.h"
#include "policyd/options.h"
#include "policyd/ratelimit_policy.h"
#include "policyd/spf_policy.h"

namespace mxguard::policyd {

// What a request needs besides the request itself; replaced as a whole on reload.
struct Checks {
  Options options;
  common::net::NetworkList trusted;
  common::net::NetworkList spf_skip;
  std::unique_ptr<Greylister> greylist;
  SelectionPolicy selection;  // whom to greylist (greylist-mode, DNS lists, trusted domains)
  std::unique_ptr<RateLimiter> ratelimit;  // when `ratelimit` is in --checks
  std::string receiver;                    // authserv-id / Received-SPF receiver
  std::optional<std::string> hop_secret;   // seals our A-R header (common/authres/seal.h)
};

// Per-message state, keyed by `instance`: SPF is evaluated once per message, and headers are
// handed out one per reply (a policy reply carries one PREPEND), on later RCPTs or at DATA.
struct MessageState {
  bool spf_done = false;
  SpfVerdict spf;
  std::deque<std::string> headers;
  std::int64_t created = 0;
};

class PolicyService : public common::daemon::Service<Options> {
 public:
  explicit PolicyService(const Options& o, Clock clock = system_clock_seconds);
  ~PolicyService() override;
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;
  // /healthz: "redis" while a check that needs Redis (greylist, ratelimit) is configured; SPF
  // alone needs none, and the DNS resolver is no check (a DNS failure is an SPF temperror by
  // design, and every MX shares the resolver's fate).
  void add_health_checks(common::metrics::Health& health) override;

  // The whole decision for one request; `reply` is called exactly once, from any thread.
  void handle_async(common::policy::Request req, common::policy::Reply reply);
  // Blocking form for tests and the fuzz target.
  std::string handle(const common::policy::Request& req);
  int tcp_port() const { return server_->tcp_port(); }

 private:
  struct Run;
  std::shared_ptr<const Checks> build(const Options& o);
  std::shared_ptr<const Checks> current() const;
  common::spf::Evaluator& evaluator();
  boost::asio::thread_pool& workers();
  void next_check(std::shared_ptr<Run> run);
  void run_spf(std::shared_ptr<Run> run);
  // Selective greylisting: looks the client up in the DNS lists the policy needs, then
  // select_and_greylist() decides (a pure function) and greylists or skips.
  void start_greylist(const std::shared_ptr<Run>& run);
  void select_and_greylist(const std::shared_ptr<Run>& run, const ListHits& hits);
  void after_greylist(const std::shared_ptr<Run>& run, Decision d);
  common::redis::Batcher& batcher();
  void finish(const std::shared_ptr<Run>& run, const std::string& action, const std::string& result,
              const std::string& reason, long age);
  std::string pop_header(const std::string& instance);
  // The state of one message, created (and the oldest evicted) on first use. Caller holds
  // messages_mutex_.
  MessageState& message_state(const std::string& instance);
  void push_headers(const std::string& instance, const std::vector<std::string>& headers);

  Options options_;
  Clock clock_;
  std::unique_ptr<common::redis::Pool> redis_;
  // /healthz's PING, on a quiet connection of its own (common/health/redis_check.h): a busy
  // pool never makes the check wait, an idle one still notices a dead Redis.
  common::health::RedisCheck redis_check_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Checks> checks_;
  std::unique_ptr<common::policy::Server> server_;

  // Created on first use, after the daemon has forked: both start threads.
  std::once_flag lazy_once_;
  std::unique_ptr<common::dns::Resolver> resolver_;
  std::unique_ptr<common::spf::Evaluator> evaluator_;
  std::unique_ptr<boost::asio::thread_pool> workers_;
  // Redis calls of greylisting, pipelined across requests; created on first use (threads).
  std::once_flag batcher_once_;
  std::unique_ptr<common::redis::Batcher> batcher_;

  std::atomic<bool> stopping_{false};  // set by the destructor: finish checks at once

  std::mutex messages_mutex_;
  std::unordered_map<std::string, MessageState> messages_;
  std::deque<std::string> message_order_;
};

}  // namespace mxguard::policyd
