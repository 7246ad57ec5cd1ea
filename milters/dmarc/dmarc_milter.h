// mxguard-dmarc's milter glue: reads the From header(s), the DKIM results from the
// Authentication-Results header that mxguard-dkim wrote under our authserv-id, checks SPF
// itself (common/spf), evaluates DMARC, applies the disposition (reject, hold, header), extends
// our A-R header with spf= and dmarc=, and counts the message into the aggregate report data.
// One decision log line per message. Must never trust an A-R header it did not get from
// mxguard-dkim (only the topmost one with our authserv-id; later ones are deleted as forged),
// and never let an internal error or Redis outage lose mail (aggregates are best effort,
// logged and counted).
#pragma once

#include <csignal>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "common/daemon/daemon.h"
#include "common/dns/resolver.h"
#include "common/health/redis_check.h"
#include "common/metrics/health.h"
#include "common/milter/engine_options.h"
#include "common/milter/milter.h"
#include "common/net/ip.h"
#include "common/redis/pool.h"
#include "common/spf/spf.h"
#include "milters/dmarc/aggregate.h"
#include "milters/dmarc/evaluate.h"
#include "milters/dmarc/options.h"

namespace mxguard::milter::dmarc {

// Everything a message needs from the configuration; replaced as a whole on reload.
struct Config {
  Options options;
  std::unique_ptr<OrgDomains> org;
  common::net::NetworkList trusted;
  std::string authserv_id;
  std::optional<std::string> hop_secret;  // verifies mxguard-dkim's seals (common/authres/seal.h)
  std::string quarantine_header_name, quarantine_header_value;
};

std::shared_ptr<const Config> make_config(const Options& o);

// mxguard-dmarc's daemon (its own socket) and its filter module (an mxguard-milter chain).
class DmarcService : public common::daemon::Service<Options>, public common::milter::Filter {
 public:
  explicit DmarcService(const Options& o);
  ~DmarcService() override;
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;
  // libmilter catches TERM, INT and HUP itself; under our engine the skeleton does.
  std::set<int> signals_owned() const override { return engine_.signals_owned(); }

  // Filter
  const common::milter::MilterOptions& milter_options() const override { return milter_options_; }
  std::unique_ptr<common::milter::Session> new_session() override;
  void start() override;  // the resolver (a thread) and the SPF evaluator
  // "redis" when aggregate-reports is on: the report data goes there (both shapes).
  void add_health_checks(common::metrics::Health& health) override;

  std::shared_ptr<const Config> config() const;
  Lookups lookups();
  common::spf::Outcome check_spf(const common::spf::Request& request);
  void record_aggregate(const Published& policy, const Row& row);
  int random100();
  // Tests: fixed pct= sampling and clock.
  void set_random(std::function<int()> r) { random_ = std::move(r); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Config> config_;
  common::dns::ResolverOptions dns_options_;
  std::unique_ptr<common::dns::Resolver> resolver_;  // created in serve(): it starts a thread
  std::unique_ptr<common::spf::Evaluator> spf_;
  std::unique_ptr<common::redis::Pool> redis_;
  std::unique_ptr<AggregateStore> aggregates_;
  std::unique_ptr<common::health::RedisCheck> redis_check_;
  common::milter::EngineOptions engine_;  // for signals_owned()
  common::milter::MilterOptions milter_options_;
  std::unique_ptr<common::milter::Milter> milter_;
  std::function<int()> random_;
  std::mutex random_mutex_;
};

}  // namespace mxguard::milter::dmarc
