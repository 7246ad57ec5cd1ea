// The filter modules of mxguard-milter (see modules.h).
#include "milters/host/modules.h"

#include <stdexcept>

#include "common/config/config.h"
#include "milters/av/av_milter.h"
#include "milters/dkim/dkim_milter.h"
#include "milters/dmarc/dmarc_milter.h"

namespace mxguard::milter::host {
namespace {

// A daemon's options from its configuration file alone, as the daemon reads them (drop-ins
// FILE.d/*.conf included, then validate()). The daemon's default file may be missing (its
// built-in defaults then, as the daemon itself would run); any other file must exist. Throws
// config::ConfigError naming file:line.
template <class Options>
Options load_options(const std::string& program, const std::string& file) {
  Options o;
  common::config::Binder binder;
  o.bind(binder);
  std::string default_file = "/etc/mxguard/" + program.substr(program.find('-') + 1) + ".conf";
  common::config::ProgramInfo info{program, "", default_file, ""};
  if (file == default_file) {
    const char* argv[] = {program.c_str()};
    common::config::parse(info, binder, 1, argv, [&] { o.validate(); });
  } else {
    const char* argv[] = {program.c_str(), "-c", file.c_str()};
    common::config::parse(info, binder, 3, argv, [&] { o.validate(); });
  }
  return o;
}

template <class Options, class Service>
class ModuleOf : public Module {
 public:
  ModuleOf(std::string program, std::string file)
      : program_(std::move(program)),
        file_(std::move(file)),
        service_(std::make_unique<Service>(load_options<Options>(program_, file_))) {}
  common::milter::Filter& filter() override { return *service_; }
  void reload() override { service_->reload(load_options<Options>(program_, file_)); }

 private:
  std::string program_, file_;
  std::unique_ptr<Service> service_;
};

}  // namespace

std::unique_ptr<Module> load_module(const std::string& name, const std::string& file) {
  if (name == "dkim") {
    return std::make_unique<ModuleOf<dkim::Options, dkim::DkimService>>("mxguard-dkim", file);
  }
  if (name == "dmarc") {
    return std::make_unique<ModuleOf<dmarc::Options, dmarc::DmarcService>>("mxguard-dmarc", file);
  }
  if (name == "av") {
    return std::make_unique<ModuleOf<av::Options, av::AvService>>("mxguard-av", file);
  }
  throw std::invalid_argument("unknown filter '" + name + "'");
}

void check_filter_config(const std::string& name, const std::string& file) {
  if (name == "dkim") {
    load_options<dkim::Options>("mxguard-dkim", file);
  } else if (name == "dmarc") {
    load_options<dmarc::Options>("mxguard-dmarc", file);
  } else if (name == "av") {
    load_options<av::Options>("mxguard-av", file);
  } else {
    throw std::invalid_argument("unknown filter '" + name + "'");
  }
}

}  // namespace mxguard::milter::host
