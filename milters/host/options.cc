// mxguard-milter's options (see options.h).
#include "milters/host/options.h"

#include <algorithm>

#include "common/milter/milter.h"
#include "milters/host/modules.h"

namespace mxguard::milter::host {

const std::vector<std::string>& known_filters() {
  static const std::vector<std::string> names{"dkim", "dmarc", "av"};
  return names;
}

void Options::bind(common::config::Binder& b) {
  daemon.bind(b);
  b.add("filters", filters,
        "the filters of the chain, in order: dkim, dmarc, av (dkim before dmarc)");
  b.add("dkim-config", dkim_config, "the dkim filter's configuration (mxguard-dkim's file)");
  b.add("dmarc-config", dmarc_config, "the dmarc filter's configuration (mxguard-dmarc's file)");
  b.add("av-config", av_config, "the av filter's configuration (mxguard-av's file)");
  b.add("on-internal-error", on_internal_error,
        "a failure of the chain itself, outside any filter: accept|tempfail|reject");
  b.add("milter-timeout", milter_timeout,
        "the I/O timeout towards the MTA (at least every filter's own)");
  engine.bind(b);
}

const std::string& Options::config_of(const std::string& filter) const {
  if (filter == "dkim") return dkim_config;
  if (filter == "dmarc") return dmarc_config;
  return av_config;
}

void Options::validate() const {
  daemon.validate();
  if (filters.empty()) throw common::config::OptionError("filters", "name at least one filter");
  const auto& known = known_filters();
  for (const auto& f : filters) {
    if (std::find(known.begin(), known.end(), f) == known.end()) {
      throw common::config::OptionError("filters",
                                        "unknown filter '" + f + "' (known: dkim, dmarc, av)");
    }
    if (std::count(filters.begin(), filters.end(), f) > 1) {
      throw common::config::OptionError("filters", "'" + f + "' is named twice");
    }
  }
  auto dkim = std::find(filters.begin(), filters.end(), "dkim");
  auto dmarc = std::find(filters.begin(), filters.end(), "dmarc");
  if (dkim != filters.end() && dmarc != filters.end() && dmarc < dkim) {
    throw common::config::OptionError("filters",
                                      "dkim must come before dmarc (DMARC reads DKIM's results)");
  }
  try {
    common::milter::parse_failure_status(on_internal_error);
  } catch (const std::exception& ex) {
    throw common::config::OptionError("on-internal-error", ex.what());
  }
  engine.validate();
  if (milter_timeout.value.count() <= 0) {
    throw common::config::OptionError("milter-timeout", "must be positive");
  }
  // Every filter's own file, read and checked as its daemon would (file:line on errors).
  for (const auto& f : filters) check_filter_config(f, config_of(f));
}

}  // namespace mxguard::milter::host
