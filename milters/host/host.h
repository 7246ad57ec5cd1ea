// mxguard-milter: one milter socket serving an ordered chain of filters (dkim, dmarc, av), each
// configured by its daemon's own file, so Postfix opens one milter connection per SMTP session
// instead of one per filter (common/milter/chain.h does the per-connection work). Reload
// (SIGUSR1; SIGHUP too under our own engine, libmilter owns it) re-reads every filter's file
// (Options::validate() checks them all first, so a broken file reloads nothing); a changed filter
// list needs a restart. Must never start serving with a filter whose configuration does not load.
#pragma once

#include <memory>
#include <vector>

#include "common/daemon/daemon.h"
#include "common/milter/milter.h"
#include "milters/host/modules.h"
#include "milters/host/options.h"

namespace mxguard::milter::host {

class HostService : public common::daemon::Service<Options> {
 public:
  explicit HostService(const Options& o);
  ~HostService() override;
  void open() override;
  void serve() override;
  void stop() override;
  void reload(const Options& fresh) override;
  // libmilter catches SIGTERM, SIGINT and SIGHUP itself; under our engine the skeleton does
  // (SIGHUP then reloads, as SIGUSR1 does).
  std::set<int> signals_owned() const override;
  // Each filter's checks (dmarc: "redis", av: "clamd"), as its own daemon would add them.
  void add_health_checks(common::metrics::Health& health) override;

  const common::milter::MilterOptions& milter_options() const { return milter_->options(); }

 private:
  Options options_;
  std::vector<std::unique_ptr<Module>> modules_;
  std::vector<common::milter::Filter*> filters_;
  std::unique_ptr<common::milter::Milter> milter_;
};

}  // namespace mxguard::milter::host
