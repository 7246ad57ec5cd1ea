// Implementation of the policy server (see server.h).
#include "common/policy/server.h"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <variant>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/net/listen.h"
#include "common/util/asio.h"

namespace mxguard::common::policy {
namespace asio = boost::asio;
using asio::ip::tcp;
using ulocal = asio::local::stream_protocol;

namespace {

struct Metrics {
  metrics::Counter& requests;
  metrics::Counter& protocol_errors;
  metrics::Counter& handler_errors;
  metrics::Counter& refused;
  metrics::Counter& idle_closed;
  metrics::Counter& slow_closed;
  metrics::Gauge& connections;

  static Metrics& get() {
    auto& r = metrics::Registry::global();
    static Metrics m{
        r.counter("mxguard_policy_requests_total", "Policy requests answered"),
        r.counter("mxguard_policy_protocol_errors_total",
                  "Connections closed for malformed policy requests"),
        r.counter("mxguard_policy_handler_errors_total",
                  "Requests answered with the error action after an internal error"),
        r.counter("mxguard_policy_connections_refused_total",
                  "Connections refused over the connection limit"),
        r.counter("mxguard_policy_idle_closed_total", "Connections closed after the idle timeout"),
        r.counter("mxguard_policy_slow_closed_total",
                  "Connections closed for a request or reply past its deadline (slow peers)"),
        r.gauge("mxguard_policy_connections", "Open policy connections")};
    return m;
  }
};

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void close() = 0;  // if idle
  virtual void abort() = 0;  // whatever it is doing
};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  ServerOptions options;
  AsyncHandler handler;
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::acceptor>> tcp_acceptors;
  std::vector<std::unique_ptr<ulocal::acceptor>> unix_acceptors;
  std::vector<std::string> unix_paths;
  std::mutex mutex;
  std::set<std::shared_ptr<ConnectionBase>> connections;
  std::atomic<bool> stopping{false};
  std::unique_ptr<asio::steady_timer> drain_timer;
  // Acceptors are not thread-safe, and several threads run the io_context: every accept, its
  // retry and stop()'s close run on this strand (TSan found close() racing a re-accept).
  asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(io)};

  Impl(ServerOptions o, AsyncHandler h) : options(std::move(o)), handler(std::move(h)) {}

  template <class Socket>
  class Connection : public ConnectionBase,
                     public std::enable_shared_from_this<Connection<Socket>> {
   public:
    Connection(Impl& server, Socket socket)
        : server_(server),
          socket_(std::move(socket)),
          strand_(asio::make_strand(server.io)),
          timer_(server.io),
          parser_(server.options.limits) {}

    void start() { read(); }

    // Closes the connection if it is idle between requests; a connection with a request in
    // flight closes itself after the reply (read() checks server_.stopping).
    void close() override {
      asio::post(strand_, [self = this->shared_from_this()] {
        if (self->reading_ && self->parser_.idle() && self->pending_.empty()) self->shutdown();
      });
    }

    // Closes whatever state the connection is in (the end of stop()'s drain time).
    void abort() override {
      asio::post(strand_, [self = this->shared_from_this()] { self->shutdown(); });
    }

   private:
    // One timer per connection, for whichever wait is current; a generation number makes a
    // wake-up that was already queued when the timer was re-armed harmless.
    template <class OnExpiry>
    void arm(std::chrono::steady_clock::duration after, OnExpiry on_expiry) {
      auto gen = ++timer_gen_;
      timer_.expires_after(after);
      timer_.async_wait(asio::bind_executor(
          strand_, [self = this->shared_from_this(), gen, on_expiry](boost::system::error_code ec) {
            if (ec || gen != self->timer_gen_ || self->closed_) return;
            on_expiry(*self);
          }));
    }
    void disarm() {
      ++timer_gen_;
      timer_.cancel();
    }

    void read() {
      if (server_.stopping && parser_.idle()) return shutdown();
      reading_ = true;
      if (parser_.idle()) {
        arm(server_.options.idle_timeout, [](Connection& c) {
          Metrics::get().idle_closed.inc();
          log::info("policy: closing idle connection");
          c.shutdown();
        });
      } else {
        // Part of a request is here: the rest must come before its deadline, however slowly
        // the bytes trickle in (the idle timer alone was re-armed by every byte).
        auto left = request_deadline_ - std::chrono::steady_clock::now();
        arm(std::max(left, std::chrono::steady_clock::duration::zero()), [](Connection& c) {
          Metrics::get().slow_closed.inc();
          log::warning("policy: closing connection: request not complete within " +
                       std::to_string(c.server_.options.request_timeout.count()) + " ms");
          c.shutdown();
        });
      }
      socket_.async_read_some(
          asio::buffer(buf_),
          asio::bind_executor(strand_, [self = this->shared_from_this()](
                                           boost::system::error_code ec, std::size_t n) {
            self->disarm();
            self->reading_ = false;
            if (ec) return self->shutdown();
            self->pending_.assign(self->buf_.data(), n);
            self->process();
          }));
    }

    // Parses what is pending; answers each complete request in order, then reads more. While
    // a request's answer is outstanding, nothing else is parsed (replies stay in order).
    void process() {
      while (!pending_.empty()) {
        if (parser_.idle()) {
          request_deadline_ = std::chrono::steady_clock::now() + server_.options.request_timeout;
        }
        std::size_t used = 0;
        auto status = parser_.feed(pending_, used);
        pending_.erase(0, used);
        if (status == Parser::Status::kError) {
          Metrics::get().protocol_errors.inc();
          log::warning("policy: closing connection: " + parser_.error());
          return shutdown();
        }
        if (status == Parser::Status::kComplete) return answer(parser_.take());  // moved
      }
      if (reply_.empty()) return read();
      // A peer that never reads its replies fills the socket buffer; it gets write_timeout.
      arm(server_.options.write_timeout, [](Connection& c) {
        Metrics::get().slow_closed.inc();
        log::warning("policy: closing connection: reply not read within " +
                     std::to_string(c.server_.options.write_timeout.count()) + " ms");
        c.shutdown();
      });
      asio::async_write(
          socket_, asio::buffer(reply_),
          asio::bind_executor(strand_, [self = this->shared_from_this()](
                                           boost::system::error_code ec, std::size_t) {
            self->disarm();
            self->reply_.clear();
            if (ec) return self->shutdown();
            self->read();
          }));
    }

    void answer(Request req) {
      Metrics::get().requests.inc();
      auto self = this->shared_from_this();
      auto done = [self](std::string action) {
        asio::post(self->strand_, [self, action = std::move(action)] {
          self->reply_ += format_reply(action);
          self->process();
        });
      };
      std::string queue_id(req.queue_id());
      try {
        server_.handler(std::move(req), done);
      } catch (const std::exception& ex) {
        Metrics::get().handler_errors.inc();
        log::error(log::format_decision(queue_id, {{"action", "error"}, {"reason", ex.what()}}));
        done(server_.options.error_action);
      }
    }

    void shutdown() {
      if (closed_) return;
      closed_ = true;
      disarm();
      boost::system::error_code ignored;
      socket_.shutdown(Socket::shutdown_both, ignored);
      socket_.close(ignored);
      server_.forget(this);
    }

    Impl& server_;
    Socket socket_;
    asio::strand<asio::io_context::executor_type> strand_;
    asio::steady_timer timer_;
    Parser parser_;
    std::array<char, 4096> buf_{};
    std::string pending_;
    std::string reply_;
    bool closed_ = false;
    bool reading_ = false;  // an async_read_some is outstanding (strand only)
    std::uint64_t timer_gen_ = 0;
    std::chrono::steady_clock::time_point request_deadline_;
  };

  void forget(ConnectionBase* c) {
    std::lock_guard lock(mutex);
    for (auto it = connections.begin(); it != connections.end(); ++it) {
      if (it->get() == c) {
        connections.erase(it);
        Metrics::get().connections.add(-1);
        if (connections.empty() && drain_timer) drain_timer->cancel();
        return;
      }
    }
  }

  template <class Socket>
  void adopt(Socket socket) {
    std::shared_ptr<Connection<Socket>> conn;
    {
      std::lock_guard lock(mutex);
      if (connections.size() >= options.max_connections) {
        Metrics::get().refused.inc();
        log::warning("policy: connection limit " + std::to_string(options.max_connections) +
                     " reached, refusing a connection");
        boost::system::error_code ignored;
        socket.close(ignored);
        return;
      }
      conn = std::make_shared<Connection<Socket>>(*this, std::move(socket));
      connections.insert(conn);
      Metrics::get().connections.add(1);
    }
    conn->start();
  }

  template <class Acceptor>
  void accept(Acceptor& acceptor) {
    net::accept_loop(acceptor, accept_strand, stopping, "policy",
                     [this](auto socket) { this->adopt(std::move(socket)); });
  }
};

Server::Server(ServerOptions options, AsyncHandler handler)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handler))) {}

Server::Server(ServerOptions options, Handler handler)
    : Server(std::move(options),
             AsyncHandler([handler = std::move(handler)](Request req, Reply reply) {
               reply(handler(req));
             })) {}

Server::~Server() {
  for (const auto& path : impl_->unix_paths) ::unlink(path.c_str());
}

void Server::open() {
  for (const auto& spec : impl_->options.listen) {
    try {
      if (spec.kind == net::SocketSpec::Kind::kUnix) {
        impl_->unix_acceptors.push_back(
            net::listen_unix(impl_->io, spec.path, impl_->options.socket_mode,
                             asio::socket_base::max_listen_connections));
        impl_->unix_paths.push_back(spec.path);
      } else {
        impl_->tcp_acceptors.push_back(
            net::listen_tcp(impl_->io, spec, asio::socket_base::max_listen_connections));
      }
    } catch (const std::exception& ex) {
      throw std::runtime_error("cannot listen on " + spec.to_string() + ": " + ex.what());
    }
  }
}

void Server::serve() {
  for (auto& a : impl_->tcp_acceptors) impl_->accept(*a);
  for (auto& a : impl_->unix_acceptors) impl_->accept(*a);
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < std::max(1u, impl_->options.threads); ++i) {
    threads.emplace_back([impl = impl_] { impl->io.run(); });
  }
  impl_->io.run();
  for (auto& t : threads) t.join();
}

void Server::stop() {
  auto impl = impl_;
  if (impl->stopping.exchange(true)) return;
  asio::post(impl->accept_strand, [impl] {
    boost::system::error_code ignored;
    for (auto& a : impl->tcp_acceptors) a->close(ignored);
    for (auto& a : impl->unix_acceptors) a->close(ignored);
    std::vector<std::shared_ptr<ConnectionBase>> all;
    {
      std::lock_guard lock(impl->mutex);
      all.assign(impl->connections.begin(), impl->connections.end());
    }
    // Idle connections close now; busy ones after their current reply (see read()), or at
    // the end of the drain time, whatever they are waiting for.
    for (auto& c : all) c->close();
    // The timer keeps io.run() going: armed only while connections remain, and cancelled by
    // forget() when the last one goes (both under the mutex: a timer is not thread-safe).
    std::lock_guard lock(impl->mutex);
    if (impl->connections.empty()) return;
    impl->drain_timer = std::make_unique<asio::steady_timer>(impl->io, impl->options.drain_timeout);
    impl->drain_timer->async_wait([weak = std::weak_ptr<Impl>(impl)](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      std::vector<std::shared_ptr<ConnectionBase>> left;
      {
        std::lock_guard lock(self->mutex);
        left.assign(self->connections.begin(), self->connections.end());
      }
      if (!left.empty()) {
        log::warning("policy: closing " + std::to_string(left.size()) +
                     " connection(s) still busy after the drain time");
      }
      for (auto& c : left) c->abort();
    });
  });
}

void Server::post(std::function<void()> fn) { asio::post(impl_->io, std::move(fn)); }

int Server::tcp_port() const {
  if (impl_->tcp_acceptors.empty()) return 0;
  return impl_->tcp_acceptors.front()->local_endpoint().port();
}

}  // namespace mxguard::common::policy
