// The milter engine options (see engine_options.h).
#include "common/milter/engine_options.h"

namespace mxguard::common::milter {

void EngineOptions::bind(config::Binder& b) {
  b.add("milter-engine", engine,
        "the milter protocol engine: libmilter (a thread per connection) or mxguard (our own, "
        "on a fixed pool of milter-threads)");
  b.add("milter-threads", threads,
        "mxguard engine: callbacks that may run at once (each may wait on DNS, Redis or clamd)");
}

void EngineOptions::validate() const {
  try {
    parse_engine(engine);
  } catch (const std::exception& ex) {
    throw config::OptionError("milter-engine", ex.what());
  }
  if (threads < 1 || threads > 1024) {
    throw config::OptionError("milter-threads", "must be between 1 and 1024");
  }
}

void EngineOptions::apply(MilterOptions& o) const {
  o.engine = parse_engine(engine);
  o.engine_threads = threads;
}

}  // namespace mxguard::common::milter
