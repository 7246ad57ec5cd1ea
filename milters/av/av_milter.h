// mxguard-av's milter glue: decides per message whether to scan (SASL, client network and
// allow-lists may skip it), streams the headers as received and the body to clamd in chunks
// while they arrive (connecting once the first chunk is full, or at end of message), and at
// end of message applies the --on-* action, replaces incoming X-Virus-Scanned /
// X-Virus-Status headers with ours and writes one decision log line. Must never accept a
// message as clean without clamd's "stream: OK", and never keep more than about one chunk of
// a message in memory.
#pragma once

#include <memory>
#include <mutex>

#include "common/daemon/daemon.h"
#include "common/metrics/health.h"
#include "common/milter/engine_options.h"
#include "common/milter/milter.h"
#include "common/net/ip.h"
#include "milters/av/clamd_client.h"
#include "milters/av/options.h"
#include "milters/av/verdict.h"

namespace mxguard::milter::av {

// Everything a message needs from the configuration; replaced as a whole on reload.
struct Config {
  Options options;
  Policy policy;
  common::net::NetworkList skip_networks;
  std::string scanned_header;  // X-Virus-Scanned value
  std::unique_ptr<ClamdPool> pool;
};

// Builds and checks a Config: throws on any problem. Starts no thread.
std::shared_ptr<Config> make_config(const Options& o);

// mxguard-av's daemon (its own socket) and its filter module (an mxguard-milter chain).
class AvService : public common::daemon::Service<Options>, public common::milter::Filter {
 public:
  explicit AvService(const Options& o);
  ~AvService() override;
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;
  // libmilter catches TERM, INT and HUP itself; under our engine the skeleton does.
  std::set<int> signals_owned() const override { return engine_.signals_owned(); }

  // Filter
  const common::milter::MilterOptions& milter_options() const override { return milter_options_; }
  std::unique_ptr<common::milter::Session> new_session() override;
  void start() override;   // clamd health checks (a thread)
  void finish() override;  // stops them
  // "clamd": some configured clamd answered its last zPING or scan (both shapes).
  void add_health_checks(common::metrics::Health& health) override;

  std::shared_ptr<const Config> config() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<Config> config_;
  bool serving_ = false;
  common::milter::EngineOptions engine_;  // for signals_owned()
  common::milter::MilterOptions milter_options_;
  std::unique_ptr<common::milter::Milter> milter_;
};

}  // namespace mxguard::milter::av
