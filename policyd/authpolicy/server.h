// mxguard-authpolicy's HTTP side on Boost.Beast: Dovecot's auth-policy client POSTs a JSON
// body to `…?command=allow|report` on a keep-alive connection and reads a JSON answer. This file
// knows HTTP only (limits on head and body size, connections and idle time, the shared-secret
// header); what to answer is the Handler's job. Must never read an unbounded request, never
// call the handler for a request without the configured secret header, and never keep a
// connection that broke the protocol.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/net/socket_spec.h"

namespace mxguard::policyd::authpolicy {

struct HttpOptions {
  common::net::SocketSpec listen;
  unsigned threads = 4;
  std::size_t max_connections = 256;
  std::chrono::milliseconds idle_timeout{60000};
  std::size_t max_body_size = 16 * 1024;
  std::size_t max_header_size = 8 * 1024;
  std::string api_header;  // "Name: value"; empty = no check
};

struct HttpAnswer {
  unsigned status = 200;  // HTTP status
  std::string body;       // JSON
};

// Hands one request's answer to its connection: call it exactly once, from any thread (e.g.
// when the Redis reply arrives). The connection reads nothing more until then, so pipelined
// requests are answered in order, and stop() lets it finish.
using HttpReply = std::function<void(HttpAnswer answer)>;
// Called on a server thread for each authorised POST; `command` is the query's command value
// (empty when missing); `command` and `body` are valid during the call only. Answers through
// `reply`, now or later: an answer that needs Redis should come later rather than hold this
// thread (what still waits here is bounded by the Redis timeout). A throw before `reply` was
// called is answered with internal_error().
using HttpHandler =
    std::function<void(std::string_view command, std::string_view body, HttpReply reply)>;

// HTTP 500 for an internal error, logged and counted
// (mxguard_authpolicy_http_errors_total{reason="internal"}): what a handler's throw gets, and
// what a handler answers when its error comes after it returned.
HttpAnswer internal_error(std::string_view what);

// Splits "Name: value" (surrounding blanks trimmed); {"", ""} for an empty text.
std::pair<std::string, std::string> split_header(std::string_view text);
// The value of `name` in the query of a request target ("/?command=allow&x=1" → "allow").
std::string query_value(std::string_view target, std::string_view name);

class HttpServer {
 public:
  HttpServer(HttpOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void open();   // binds (as root, before privileges are dropped); throws std::runtime_error
  void serve();  // runs the threads until stop()
  void stop();   // stops accepting, answers requests in flight, closes idle connections
  int tcp_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mxguard::policyd::authpolicy
