// The filter modules mxguard-milter loads: each is the filter's daemon Service (which is a
// common::milter::Filter), built from the filter's own configuration file, as its daemon would
// read it (drop-ins included). The host includes the filters; no filter includes another.
#pragma once

#include <memory>
#include <string>

#include "common/milter/milter.h"

namespace mxguard::milter::host {

class Module {
 public:
  virtual ~Module() = default;
  virtual common::milter::Filter& filter() = 0;
  // Re-reads the filter's file and applies it; throws (the running configuration stays).
  virtual void reload() = 0;
};

// The module for a filter named in known_filters(); reads FILE (throws on errors).
std::unique_ptr<Module> load_module(const std::string& name, const std::string& file);

// Reads and validates FILE as filter NAME's daemon would; throws config::ConfigError.
void check_filter_config(const std::string& name, const std::string& file);

}  // namespace mxguard::milter::host
