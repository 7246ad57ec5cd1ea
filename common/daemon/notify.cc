// sd_notify(3) protocol (see notify.h).
#include "common/daemon/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log/log.h"

namespace mxguard::common::daemon {

bool notify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return false;
  std::size_t len = std::strlen(path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (len >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) log::warning("notify: unusable NOTIFY_SOCKET " + std::string(path));
    return false;
  }
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // the abstract namespace
  socklen_t addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr), addr_len);
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(state.size())) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      log::warning("notify: cannot tell systemd (" + std::string(path) +
                   "): " + std::strerror(err));
    }
    return false;
  }
  return true;
}

Watchdog::Watchdog() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && std::atol(pid) != ::getpid()) return;
  long long value = std::atoll(usec);
  if (value <= 0) return;
  interval_ = std::chrono::microseconds(value / 2);
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      notify("WATCHDOG=1");
      cv_.wait_for(lock, interval_, [this] { return stop_; });
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace mxguard::common::daemon
