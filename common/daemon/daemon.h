// The skeleton every mxguard daemon runs on (Postfix's multi_server.c plays this role there):
// parse → validate → open sockets and files as root → detach → pidfile → drop privileges →
// signals → serve. A daemon supplies an Options struct and a Service; its main() is a few lines.
// Must never start a thread before it forks, and never serve with root privileges when a user
// is configured.
#pragma once

#include <atomic>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/config/config.h"
#include "common/daemon/notify.h"
#include "common/log/log.h"
#include "common/metrics/health.h"
#include "common/metrics/http_server.h"
#include "common/metrics/metrics.h"
#include "common/version.h"

namespace mxguard::common::daemon {

// Options every daemon has. A daemon's Options holds one of these as `daemon`, with its own
// default listen address set in-class.
struct DaemonOptions {
  std::string listen;
  bool foreground = false;
  std::string user;
  std::string group;
  std::string pidfile;
  std::string log_level = "info";
  std::string log_target = "syslog";
  std::string metrics_listen;  // empty: no metrics endpoint

  void bind(config::Binder& b);
  void validate() const;  // throws config::OptionError
};

// What a daemon does. open() runs as root before privileges are dropped and must not start
// threads (the skeleton may still fork); serve() blocks until stop() is called.
template <class Options>
class Service {
 public:
  virtual ~Service() = default;
  virtual void open() = 0;
  virtual void serve() = 0;
  // Called from the signal thread: stop accepting, let work in flight finish, return from serve.
  virtual void stop() = 0;
  // Called from the signal thread with freshly parsed options. Throw to keep the old state.
  virtual void reload(const Options& fresh) = 0;
  // Signals the service's own library handles (libmilter owns TERM, INT and HUP); the skeleton
  // then neither waits for them nor reloads on them.
  virtual std::set<int> signals_owned() const { return {}; }
  // Adds a /healthz check per dependency the service cannot work without (Redis, clamd); called
  // once, after open(). The skeleton's own check, "serving", is already there. A check runs on
  // the metrics endpoint's thread and must be bounded by its dependency's timeout.
  virtual void add_health_checks(metrics::Health& health) { (void)health; }
};

namespace detail {
// Non-template parts of run(); see daemon.cc.
void init_logging(const config::ProgramInfo& info, const DaemonOptions& o);
void detach();
void write_pidfile(const std::string& path);
void remove_pidfile(const std::string& path);
void drop_privileges(const std::string& user, const std::string& group);
sigset_t handled_signals();
// Waits for signals until `on_stop` has been called; returns the thread.
std::thread start_signal_thread(const std::set<int>& owned, std::function<void()> on_stop,
                                std::function<void()> on_reload);
void stop_signal_thread(std::thread& t);

// The skeleton's /healthz check "serving": healthy from the moment serve() runs (the listener
// is up: open() bound it) until a stop was asked for, so a load balancer drains the daemon
// while it finishes the requests in flight.
class ServingState {
 public:
  enum class Phase { kStarting, kServing, kStopping };
  void set(Phase p) { phase_.store(p); }
  metrics::Health::Result check() const;

 private:
  std::atomic<Phase> phase_{Phase::kStarting};
};
}  // namespace detail

constexpr int kExitConfig = 78;  // EX_CONFIG, as Postfix's tools use it
constexpr int kExitSoftware = 70;

template <class Options>
using ServiceFactory = std::function<std::unique_ptr<Service<Options>>(const Options&)>;

// Parses options from the command line (and config file) into `opts`; handles --help,
// --version, --check-config and --dump-config. Returns -1 when the caller should go on, or the
// exit code.
template <class Options>
int parse_options(const config::ProgramInfo& info, Options& opts, int argc, const char* const* argv,
                  config::Request* request = nullptr) {
  config::Binder binder;
  opts.bind(binder);
  try {
    auto req = config::parse(info, binder, argc, argv, [&] { opts.validate(); });
    if (request) *request = req;
    switch (req.action) {
      case config::Request::Action::kHelp:
        std::cout << config::help_text(info, binder);
        return 0;
      case config::Request::Action::kVersion:
        std::cout << info.name << " " << mxguard::kVersion << "\n";
        return 0;
      case config::Request::Action::kDumpConfig:
        std::cout << config::dump_config(binder);
        return 0;
      case config::Request::Action::kCheckConfig:
        std::cout << info.name << ": configuration "
                  << (req.config_file.empty() ? "(defaults)" : req.config_file) << " is valid\n";
        return 0;
      case config::Request::Action::kRun:
        return -1;
    }
  } catch (const config::ConfigError& ex) {
    std::cerr << info.name << ": fatal: " << ex.what() << "\n";
    return kExitConfig;
  }
  return -1;
}

template <class Options>
int run(const config::ProgramInfo& info, int argc, const char* const* argv,
        const ServiceFactory<Options>& make) {
  Options opts;
  if (int rc = parse_options(info, opts, argc, argv); rc >= 0) return rc;
  const DaemonOptions& d = opts.daemon;
  detail::init_logging(info, d);
  try {
    std::unique_ptr<Service<Options>> service = make(opts);
    service->open();
    detail::ServingState serving;
    metrics::Health health;
    health.add("serving", [&serving] { return serving.check(); });
    service->add_health_checks(health);
    std::unique_ptr<metrics::HttpServer> metrics_server;
    if (!d.metrics_listen.empty()) {
      metrics_server = std::make_unique<metrics::HttpServer>(d.metrics_listen,
                                                             metrics::Registry::global(), &health);
    }
    if (!d.foreground) detail::detach();
    if (!d.pidfile.empty()) detail::write_pidfile(d.pidfile);
    detail::drop_privileges(d.user, d.group);

    // Block the signals we handle in every thread; one thread waits for them.
    sigset_t set = detail::handled_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    Service<Options>* raw = service.get();
    std::thread signals = detail::start_signal_thread(
        service->signals_owned(),
        [raw, &serving] {
          serving.set(detail::ServingState::Phase::kStopping);
          notify("STOPPING=1");
          raw->stop();
        },
        [raw, &info, argc, argv] {
          Options fresh;
          config::Binder binder;
          fresh.bind(binder);
          notify("RELOADING=1");
          try {
            config::parse(info, binder, argc, argv, [&] { fresh.validate(); });
            log::set_level(log::parse_level(fresh.daemon.log_level));
            raw->reload(fresh);
            log::info("reload: done");
          } catch (const std::exception& ex) {
            log::error(std::string("reload failed, keeping the running configuration: ") +
                       ex.what());
          }
          notify("READY=1");
        });
    log::info(info.name + " " + mxguard::kVersion + " started");
    if (metrics_server) metrics_server->start();
    // Type=notify units: the sockets listen (open() bound them), so Postfix may connect.
    notify("READY=1\nSTATUS=serving");
    Watchdog watchdog;
    serving.set(detail::ServingState::Phase::kServing);
    raw->serve();
    serving.set(detail::ServingState::Phase::kStopping);
    if (metrics_server) metrics_server->stop();
    detail::stop_signal_thread(signals);
    service.reset();
    if (!d.pidfile.empty()) detail::remove_pidfile(d.pidfile);
    log::info(info.name + " stopped");
    return 0;
  } catch (const std::exception& ex) {
    log::write(log::Level::kFatal, ex.what());
    if (d.log_target != "stderr") std::cerr << info.name << ": fatal: " << ex.what() << "\n";
    return kExitSoftware;
  }
}

}  // namespace mxguard::common::daemon
