// Asio server for the Postfix policy protocol: unix and inet listeners, many requests per
// connection (Postfix keeps policy connections open), an idle timeout, a connection limit, and
// a pool of threads so a slow check on one connection never blocks the others.
// Garbage input is logged and closes that connection only. Must never let a handler exception
// escape: it becomes the configured error action for that request.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/net/socket_spec.h"
#include "common/policy/codec.h"

namespace mxguard::common::policy {

struct ServerOptions {
  std::vector<net::SocketSpec> listen;
  std::size_t max_connections = 200;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(300)};
  // A request must arrive whole within this time of its first byte (Postfix writes it at
  // once), and a reply must be taken by the peer within write_timeout: a peer that trickles
  // bytes or never reads loses its connection instead of holding a slot forever.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  // stop() closes idle connections at once and waits this long for busy ones, then closes them.
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(10)};
  unsigned threads = 4;
  unsigned socket_mode = 0666;  // unix sockets; access is controlled by the directory
  Limits limits;
  // The reply when a handler throws: a temporary failure, so Postfix retries later.
  std::string error_action = "DEFER_IF_PERMIT Service temporarily unavailable";
};

// Returns the action for one request (without "action="). Runs on a server thread; may block
// for a bounded time (its dependencies have finite timeouts).
using Handler = std::function<std::string(const Request&)>;
// The asynchronous form: calls `reply` exactly once, from any thread, with the action. Lets a
// check wait for DNS without holding a server thread. The connection reads nothing more until
// the reply came, so replies stay in request order.
using Reply = std::function<void(std::string action)>;
using AsyncHandler = std::function<void(Request request, Reply reply)>;  // request is moved in

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  Server(ServerOptions options, AsyncHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void open();   // binds every listener; throws std::runtime_error naming the listener
  void serve();  // runs the threads; returns after stop() once connections have drained
  void stop();   // thread-safe; in-flight requests are answered, idle connections closed
  // Runs fn on one of the server's threads (e.g. to continue a request after DNS answered).
  void post(std::function<void()> fn);
  // Bound TCP port of the first inet listener (for tests that listen on port 0).
  int tcp_port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mxguard::common::policy
