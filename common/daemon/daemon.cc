// Non-template parts of the daemon skeleton: detaching, pidfile, privileges, signal thread.
#include "common/daemon/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "common/net/socket_spec.h"

namespace mxguard::common::daemon {
namespace {

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

}  // namespace

void DaemonOptions::bind(config::Binder& b) {
  b.add("listen", listen, "where to accept connections: unix:/path or inet:host:port");
  b.add("foreground", foreground, "stay in the foreground (for systemd and tests)");
  b.add("user", user, "user to run as after opening sockets (empty: stay as started)");
  b.add("group", group, "group to run as (empty: the user's primary group)");
  b.add("pidfile", pidfile, "file to write the daemon's pid to (empty: none)");
  b.add("log-level", log_level, "debug, info, warning or error");
  b.add("log-target", log_target, "syslog (facility mail) or stderr");
  b.add("metrics-listen", metrics_listen,
        "inet:host:port for the Prometheus endpoint (empty: disabled)");
}

void DaemonOptions::validate() const {
  auto check = [](const std::string& name, auto fn) {
    try {
      fn();
    } catch (const std::invalid_argument& ex) {
      throw config::OptionError(name, ex.what());
    }
  };
  if (listen.empty()) throw config::OptionError("listen", "must not be empty");
  check("listen", [&] { net::SocketSpec::parse(listen); });
  check("log-level", [&] { log::parse_level(log_level); });
  check("log-target", [&] { log::parse_target(log_target); });
  if (!metrics_listen.empty()) {
    check("metrics-listen", [&] {
      if (net::SocketSpec::parse(metrics_listen).kind == net::SocketSpec::Kind::kUnix) {
        throw std::invalid_argument("must be inet:host:port");
      }
    });
  }
  if (!group.empty() && user.empty()) {
    throw config::OptionError("group", "needs user to be set as well");
  }
}

namespace detail {

void init_logging(const config::ProgramInfo& info, const DaemonOptions& o) {
  log::init(info.name, log::parse_target(o.log_target), log::parse_level(o.log_level));
}

void detach() {
  pid_t pid = ::fork();
  if (pid < 0) throw sys_error("fork");
  if (pid > 0) _exit(0);
  if (::setsid() < 0) throw sys_error("setsid");
  pid = ::fork();  // never reacquire a controlling terminal
  if (pid < 0) throw sys_error("fork");
  if (pid > 0) _exit(0);
  if (::chdir("/") != 0) throw sys_error("chdir /");
  int fd = ::open("/dev/null", O_RDWR);
  if (fd < 0) throw sys_error("open /dev/null");
  ::dup2(fd, 0);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  if (fd > 2) ::close(fd);
}

void write_pidfile(const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write pidfile " + path);
  out << ::getpid() << "\n";
}

void remove_pidfile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    log::warning("cannot remove pidfile " + path + ": " + std::strerror(errno));
  }
}

void drop_privileges(const std::string& user, const std::string& group) {
  if (user.empty()) return;
  errno = 0;
  struct passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) throw std::runtime_error("unknown user '" + user + "'");
  gid_t gid = pw->pw_gid;
  if (!group.empty()) {
    struct group* gr = ::getgrnam(group.c_str());
    if (gr == nullptr) throw std::runtime_error("unknown group '" + group + "'");
    gid = gr->gr_gid;
  }
  if (::geteuid() != 0) {
    if (::geteuid() == pw->pw_uid) return;  // already that user
    throw std::runtime_error("must be started as root to switch to user '" + user + "'");
  }
  if (::initgroups(pw->pw_name, gid) != 0) throw sys_error("initgroups");
  if (::setgid(gid) != 0) throw sys_error("setgid");
  if (::setuid(pw->pw_uid) != 0) throw sys_error("setuid");
  if (::setuid(0) == 0) throw std::runtime_error("privileges could be regained after setuid");
}

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
  return set;
}

std::thread start_signal_thread(const std::set<int>& owned, std::function<void()> on_stop,
                                std::function<void()> on_reload) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    if (!owned.count(s)) sigaddset(&set, s);
  }
  sigaddset(&set, SIGUSR2);
  return std::thread([set, on_stop = std::move(on_stop), on_reload = std::move(on_reload)] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGTERM || sig == SIGINT) {
        log::info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                  ", shutting down");
        on_stop();
        return;
      }
      if (sig == SIGHUP || sig == SIGUSR1) {
        log::info("received reload signal");
        on_reload();
      }
      // SIGUSR2 is our own wake-up from stop_signal_thread().
      if (sig == SIGUSR2) return;
    }
  });
}

metrics::Health::Result ServingState::check() const {
  switch (phase_.load()) {
    case Phase::kStarting:
      return metrics::Health::Result::bad("starting");
    case Phase::kServing:
      return metrics::Health::Result::good();
    case Phase::kStopping:
      return metrics::Health::Result::bad("stopping");
  }
  return metrics::Health::Result::bad("unknown");
}

void stop_signal_thread(std::thread& t) {
  if (!t.joinable()) return;
  // The thread may already have returned after SIGTERM; otherwise wake it with SIGUSR2, which
  // every thread blocks, so it can only be taken by this sigwait.
  pthread_kill(t.native_handle(), SIGUSR2);
  t.join();
}

}  // namespace detail
}  // namespace mxguard::common::daemon
