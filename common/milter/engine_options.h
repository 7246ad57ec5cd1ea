// The options every milter daemon (and mxguard-milter) has for the engine that speaks the
// milter protocol: `milter-engine` (libmilter or mxguard, engine.h) and `milter-threads`.
// Must never leave SIGTERM to nobody: libmilter catches TERM, INT and HUP itself, our engine
// leaves them to the daemon skeleton.
#pragma once

#include <csignal>
#include <set>
#include <string>

#include "common/config/config.h"
#include "common/milter/milter.h"

namespace mxguard::common::milter {

struct EngineOptions {
  std::string engine = "mxguard";
  unsigned threads = 32;

  void bind(config::Binder& b);
  void validate() const;  // throws config::OptionError naming the option
  void apply(MilterOptions& o) const;
  // The signals the engine catches itself (daemon::Service::signals_owned).
  std::set<int> signals_owned() const {
    return parse_engine(engine) == MilterOptions::Engine::kLibmilter
               ? std::set<int>{SIGTERM, SIGINT, SIGHUP}
               : std::set<int>{};
  }
};

}  // namespace mxguard::common::milter
