// mxguard-milter's service (see host.h).
#include "milters/host/host.h"

#include <stdexcept>

#include "common/log/log.h"
#include "common/milter/chain.h"

namespace mxguard::milter::host {

HostService::HostService(const Options& o) : options_(o) {
  for (const auto& name : o.filters) {
    modules_.push_back(load_module(name, o.config_of(name)));
    filters_.push_back(&modules_.back()->filter());
  }
  common::milter::MilterOptions base;
  base.name = "mxguard-milter";
  base.listen = o.daemon.listen;
  base.timeout_seconds = static_cast<int>(o.milter_timeout.seconds().count());
  base.on_internal_error = common::milter::parse_failure_status(o.on_internal_error);
  o.engine.apply(base);
  milter_ = std::make_unique<common::milter::Milter>(
      common::milter::chain_options(base, filters_),
      [this] { return std::make_unique<common::milter::ChainSession>(filters_); });
}

HostService::~HostService() = default;

void HostService::open() { milter_->open(); }

std::set<int> HostService::signals_owned() const { return options_.engine.signals_owned(); }

void HostService::add_health_checks(common::metrics::Health& health) {
  for (auto* f : filters_) f->add_health_checks(health);
}

void HostService::serve() {
  for (auto* f : filters_) f->start();
  std::string names;
  for (const auto& n : options_.filters) names += (names.empty() ? "" : ", ") + n;
  common::log::info("filters: " + names);
  milter_->serve();
  for (auto* f : filters_) f->finish();
}

void HostService::stop() { milter_->stop(); }

void HostService::reload(const Options& fresh) {
  if (fresh.filters != options_.filters || fresh.daemon.listen != options_.daemon.listen) {
    throw std::runtime_error("filters or listen changed: restart mxguard-milter to apply them");
  }
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    const auto& name = options_.filters[i];
    if (fresh.config_of(name) != options_.config_of(name)) {
      throw std::runtime_error(name + "-config changed: restart mxguard-milter to apply it");
    }
  }
  // Each filter keeps its running configuration if its new one fails (and says so); the
  // others still take theirs.
  std::string failed;
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    try {
      modules_[i]->reload();
    } catch (const std::exception& ex) {
      common::log::error("reload of " + options_.filters[i] +
                         " failed, keeping its running configuration: " + ex.what());
      failed += (failed.empty() ? "" : ", ") + options_.filters[i];
    }
  }
  if (!failed.empty()) throw std::runtime_error("not reloaded: " + failed);
}

}  // namespace mxguard::milter::host
