// A client for clamd: one connection streams one message with zINSTREAM in chunks of at most
// --chunk-size bytes (memory stays bounded whatever the message size), and a pool of clamd
// servers fails over to the next server when one cannot be reached and keeps a down server
// out of rotation with backoff until a zPING answers PONG again. Every wait is bounded
// (--connect-timeout, --scan-timeout). Must never block without a deadline, and never turn an
// I/O problem into anything but a ClamdError.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/net/socket_spec.h"
#include "milters/av/clamd_protocol.h"

namespace mxguard::milter::av {

// What went wrong talking to clamd; `kind()` names it for metrics and logs.
class ClamdError : public std::runtime_error {
 public:
  // kSizeLimit: clamd said "INSTREAM size limit exceeded" while we were still sending.
  enum class Kind { kConnect, kTimeout, kIo, kProtocol, kSizeLimit };
  ClamdError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};
std::string_view error_kind_name(ClamdError::Kind k);

// One socket to one clamd (RAII). Times are per operation.
class ClamdConnection {
 public:
  ClamdConnection(const common::net::SocketSpec& spec, std::chrono::milliseconds connect_timeout);
  ~ClamdConnection();
  ClamdConnection(const ClamdConnection&) = delete;
  ClamdConnection& operator=(const ClamdConnection&) = delete;

  void send_all(std::string_view data, std::chrono::milliseconds timeout);
  // Reads up to the first NUL (or EOF), at most kMaxReplyBytes.
  std::string read_reply(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
};

// One message streamed to clamd. write() buffers up to chunk_size bytes and sends a full chunk;
// finish() sends the rest and the terminator and returns the parsed verdict.
class InstreamScan {
 public:
  InstreamScan(std::unique_ptr<ClamdConnection> conn, std::size_t chunk_size,
               std::chrono::milliseconds timeout);
  void write(std::string_view data);
  ClamdReply finish();
  std::uint64_t bytes_sent() const { return bytes_; }

 private:
  void flush();
  // clamd may stop reading and answer early ("INSTREAM size limit exceeded"): after a failed
  // send, read that answer so the error says what clamd said.
  [[noreturn]] void fail_after_send_error(const ClamdError& ex);

  std::unique_ptr<ClamdConnection> conn_;
  std::size_t chunk_size_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::uint64_t bytes_ = 0;
};

struct PoolOptions {
  std::vector<common::net::SocketSpec> servers;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds scan_timeout{60000};
  std::chrono::milliseconds health_interval{10000};
  std::size_t chunk_size = std::size_t{64} * 1024;
  std::chrono::milliseconds min_backoff{1000};
  std::chrono::milliseconds max_backoff{30000};
};

// The clamd servers in configured order. start_scan() connects to the first server that is not
// marked down (then to down ones, as a last resort), sends zINSTREAM and returns the scan plus
// the server's name. A health thread (start_health_checks) pings every server each
// health_interval and down servers when their backoff ends.
class ClamdPool {
 public:
  explicit ClamdPool(PoolOptions options);
  ~ClamdPool();
  ClamdPool(const ClamdPool&) = delete;
  ClamdPool& operator=(const ClamdPool&) = delete;

  struct Started {
    std::unique_ptr<InstreamScan> scan;
    std::string server;
  };
  Started start_scan();  // throws ClamdError (kConnect when no server could be reached)

  // A scan on `server` failed in a way that says the server is unwell (timeout, I/O error).
  void report_failure(const std::string& server);

  // zPING → PONG within connect_timeout.
  bool ping(const common::net::SocketSpec& spec) const;

  void start_health_checks();  // starts the thread (call after the daemon forked)
  void stop_health_checks();

  // For tests and metrics: is the server (Postfix form) currently considered up?
  bool is_up(const std::string& server) const;
  // For /healthz: empty while some server is up (answered its last zPING or scan), else every
  // server with the reason it was marked down.
  std::string all_down() const;
  const PoolOptions& options() const { return options_; }

 private:
  struct Server {
    common::net::SocketSpec spec;
    std::string name;
    bool up = true;
    std::chrono::steady_clock::time_point retry_at{};
    std::chrono::milliseconds backoff{0};
    std::string why_down;
  };
  void mark_down(Server& s, const std::string& why);
  void mark_up(Server& s);
  void health_loop();

  PoolOptions options_;
  mutable std::mutex mutex_;
  std::vector<Server> servers_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread health_;
};

}  // namespace mxguard::milter::av
