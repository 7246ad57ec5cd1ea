// Listening sockets of our Asio servers (common/policy/server.cc, common/milter/engine.cc),
// opened and accepted from the same way. Must never spin on a failing accept, and never leave
// a stale unix socket file in the way of a restart.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/log/log.h"
#include "common/net/socket_spec.h"
#include "common/util/asio.h"

namespace mxguard::common::net {

// A unix listener at `path`: a stale socket file from an earlier run is removed first; the new
// one gets `mode`. Throws boost::system::system_error.
std::unique_ptr<boost::asio::local::stream_protocol::acceptor> listen_unix(
    boost::asio::io_context& io, const std::string& path, unsigned mode, int backlog);
// An inet listener on spec.host:spec.port with SO_REUSEADDR and TCP_NODELAY (accepted sockets
// inherit it: no Nagle/delayed-ACK stalls on replies). Throws.
std::unique_ptr<boost::asio::ip::tcp::acceptor> listen_tcp(boost::asio::io_context& io,
                                                           const SocketSpec& spec, int backlog);

namespace detail {
// At most one accept warning every 10 s per process.
bool accept_warning_due();
}  // namespace detail

// Accepts on `acceptor` until it is closed or `stopping` is set, handing each new socket to
// `on_socket`; everything runs on `strand` (acceptors are not thread-safe). A failed accept
// (out of descriptors, EMFILE, and the like) is retried every 100 ms, not in a spin, and logged
// as "WHO: accept failed: …" at most every 10 s.
template <class Acceptor, class Strand, class OnSocket>
void accept_loop(Acceptor& acceptor, Strand strand, const std::atomic<bool>& stopping,
                 const char* who, OnSocket on_socket) {
  namespace asio = boost::asio;
  acceptor.async_accept(asio::bind_executor(
      strand, [&acceptor, strand, &stopping, who, on_socket = std::move(on_socket)](
                  boost::system::error_code ec, auto socket) mutable {
        if (ec == asio::error::operation_aborted || stopping) return;
        if (!ec) {
          on_socket(std::move(socket));
          accept_loop(acceptor, strand, stopping, who, std::move(on_socket));
          return;
        }
        if (detail::accept_warning_due()) {
          log::warning(std::string(who) + ": accept failed: " + ec.message() +
                       " (retrying every 100 ms)");
        }
        auto timer = std::make_shared<asio::steady_timer>(acceptor.get_executor(),
                                                          std::chrono::milliseconds(100));
        timer->async_wait(asio::bind_executor(
            strand, [&acceptor, strand, &stopping, who, on_socket = std::move(on_socket),
                     timer](boost::system::error_code) mutable {
              if (!stopping) accept_loop(acceptor, strand, stopping, who, std::move(on_socket));
            }));
      }));
}

}  // namespace mxguard::common::net
