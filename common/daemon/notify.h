// systemd's service notification protocol (sd_notify(3)), without libsystemd: one datagram of
// "KEY=VALUE" lines to the unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
// abstract namespace). Lets the units be Type=notify (ready once the sockets listen) with a
// watchdog. Must never fail the daemon: without NOTIFY_SOCKET it does nothing, and a send that
// fails is logged once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <thread>

namespace mxguard::common::daemon {

// Sends `state` (e.g. "READY=1") to systemd; false when there is no NOTIFY_SOCKET or the send
// failed.
bool notify(std::string_view state);

// Sends WATCHDOG=1 every half of $WATCHDOG_USEC from its own thread while it lives (nothing
// when the variable is unset or meant for another process: $WATCHDOG_PID).
class Watchdog {
 public:
  Watchdog();
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  std::chrono::microseconds interval() const { return interval_; }

 private:
  std::chrono::microseconds interval_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace mxguard::common::daemon
