// mxguard-policyd's service: the policy server, the checks run in the configured order, and
// one decision log line per request with the queue id. Trusted and SASL-authenticated clients
// are never checked. Must never answer anything but a valid action, and never let a failed
// dependency reject mail (store errors follow --greylist-on-store-error).
#pragma once

#include <memory>
#include <mutex>

#include "common/daemon/daemon.h"
#include "common/net/ip.h"
#include "common/policy/server.h"
#include "common/redis/pool.h"
#include "policyd/greylist.h"
#include "policyd/options.h"

namespace mxguard::policyd {

// What a request needs besides the request itself; replaced as a whole on reload.
struct Checks {
  common::net::NetworkList trusted;
  std::vector<std::string> order;
  std::unique_ptr<Greylister> greylist;
};

class PolicyService : public common::daemon::Service<Options> {
 public:
  explicit PolicyService(const Options& o, Clock clock = system_clock_seconds);
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;

  // The whole decision for one request (public for tests and the fuzz target).
  std::string handle(const common::policy::Request& req);
  int tcp_port() const { return server_->tcp_port(); }

 private:
  std::shared_ptr<const Checks> build(const Options& o);
  std::shared_ptr<const Checks> current() const;

  Options options_;
  Clock clock_;
  std::unique_ptr<common::redis::Pool> redis_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Checks> checks_;
  std::unique_ptr<common::policy::Server> server_;
};

}  // namespace mxguard::policyd
