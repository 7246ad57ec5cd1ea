// Our own milter engine on Boost.Asio (see engine.h).
#include "common/milter/engine.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/milter/wire.h"
#include "common/net/listen.h"
#include "common/net/socket_spec.h"
#include "common/util/asio.h"

namespace mxguard::common::milter {
namespace asio = boost::asio;
using asio::ip::tcp;
using ulocal = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

namespace {

struct Metrics {
  metrics::Gauge& connections;
  metrics::Counter& protocol_errors;
  metrics::Counter& timeouts;

  static Metrics& get() {
    auto& r = metrics::Registry::global();
    static Metrics m{
        r.gauge("mxguard_milter_connections", "Open milter connections (our own engine)"),
        r.counter("mxguard_milter_protocol_errors_total",
                  "Milter connections closed for a malformed or out-of-order command"),
        r.counter("mxguard_milter_timeouts_total",
                  "Milter connections closed after the MTA was silent or did not read for "
                  "milter-timeout")};
    return m;
  }
};

// Writes all of `data` to a socket, waiting at most `timeout` for the peer to take it.
bool write_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
  }
  return true;
}

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  // Closes the socket under the connection's lock, so the pending read ends; thread-safe.
  virtual void kill() = 0;
  // Since when it waits for the MTA (0: a callback or a write is running).
  std::atomic<Clock::rep> waiting_since{0};
};

}  // namespace

struct Engine::Impl : std::enable_shared_from_this<Engine::Impl> {
  MilterOptions options;
  const Milter::Factory& factory;
  bool tcp = false;
  asio::io_context io;
  std::unique_ptr<tcp::acceptor> tcp_acceptor;
  std::unique_ptr<ulocal::acceptor> unix_acceptor;
  std::string unix_path;
  asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(io)};
  asio::steady_timer sweeper{io};  // on accept_strand
  std::mutex mutex;
  std::set<std::shared_ptr<ConnectionBase>> connections;
  std::atomic<bool> stopping{false};
  Clock::time_point drain_deadline;

  Impl(MilterOptions o, const Milter::Factory& f) : options(std::move(o)), factory(f) {}

  std::chrono::milliseconds timeout() const {
    return std::chrono::seconds(std::max(1, options.timeout_seconds));
  }

  template <class Socket>
  class Connection : public ConnectionBase,
                     public std::enable_shared_from_this<Connection<Socket>> {
   public:
    Connection(Impl& engine, Socket socket)
        : engine_(engine),
          socket_(std::move(socket)),
          conversation_(engine.options, engine.factory, engine.tcp,
                        [this](std::string& out) { flush(out); }) {}

    void start() {
      buf_.resize(16 * 1024);
      read();
    }

    void kill() override {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      // shutdown() wakes the pending read; the read handler then closes the socket.
      ::shutdown(socket_.native_handle(), SHUT_RDWR);
    }

   private:
    void read() {
      waiting_since.store(Clock::now().time_since_epoch().count());
      socket_.async_read_some(
          asio::buffer(buf_.data() + have_, buf_.size() - have_),
          [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
            self->waiting_since.store(0);
            if (ec) return self->finish();
            self->have_ += n;
            self->process();
          });
    }

    // Callbacks are guarded by the Dispatcher; what is left to throw here (out of memory) must
    // not leave an Asio handler, which would end the thread: the connection closes instead, and
    // the MTA applies its default action.
    void process() {
      try {
        process_input();
      } catch (const std::exception& ex) {
        metrics::Registry::global()
            .counter("mxguard_milter_internal_errors_total",
                     "Milter callbacks that failed with an internal error", {{"stage", "engine"}})
            .inc();
        log::error(std::string("milter: closing connection after an internal error: ") + ex.what());
        finish();
      }
    }

    void process_input() {
      std::size_t used = conversation_.feed(std::string_view(buf_.data(), have_));
      if (used > 0) {
        std::memmove(buf_.data(), buf_.data() + used, have_ - used);
        have_ -= used;
      }
      if (!conversation_.output().empty() && !flush(conversation_.output())) return finish();
      if (conversation_.done()) {
        if (!conversation_.error().empty()) {
          Metrics::get().protocol_errors.inc();
          log::warning("milter: closing connection: " + conversation_.error());
        }
        return finish();
      }
      // A packet bigger than the buffer: room for all of it (feed() checked its size).
      std::size_t need = Conversation::packet_size(std::string_view(buf_.data(), have_));
      if (need > buf_.size()) buf_.resize(need);
      read();
    }

    // Our replies are small and the MTA reads them at once: one send() nearly always; a
    // peer that stops reading gets the I/O timeout.
    bool flush(std::string& out) {
      bool ok = write_all(socket_.native_handle(), out, engine_.timeout());
      if (!ok) {
        Metrics::get().timeouts.inc();
        log::warning("milter: closing connection: the MTA did not take our reply");
      }
      out.clear();
      return ok;
    }

    void finish() {
      conversation_.lost();  // aborts a message in progress and closes the session
      {
        std::lock_guard lock(mutex_);
        closed_ = true;
        boost::system::error_code ignored;
        socket_.close(ignored);
      }
      engine_.forget(this);
    }

    Impl& engine_;
    Socket socket_;
    Conversation conversation_;
    std::vector<char> buf_;
    std::size_t have_ = 0;
    std::mutex mutex_;
    bool closed_ = false;
  };

  void forget(ConnectionBase* c) {
    std::lock_guard lock(mutex);
    for (auto it = connections.begin(); it != connections.end(); ++it) {
      if (it->get() == c) {
        connections.erase(it);
        Metrics::get().connections.add(-1);
        return;
      }
    }
  }

  template <class Socket>
  void adopt(Socket socket) {
    auto conn = std::make_shared<Connection<Socket>>(*this, std::move(socket));
    {
      std::lock_guard lock(mutex);
      connections.insert(conn);
      Metrics::get().connections.add(1);
    }
    conn->start();
  }

  template <class Acceptor>
  void accept(Acceptor& acceptor) {
    net::accept_loop(acceptor, accept_strand, stopping, "milter",
                     [this](auto socket) { this->adopt(std::move(socket)); });
  }

  // Once a second (a quarter while stopping): close the connections that waited for the MTA
  // longer than the timeout, and after stop() the ones left at the end of the drain time.
  void sweep() {
    sweeper.expires_after(stopping ? std::chrono::milliseconds(250) : std::chrono::seconds(1));
    sweeper.async_wait(asio::bind_executor(accept_strand, [this](boost::system::error_code ec) {
      if (ec == asio::error::operation_aborted && !stopping) return;
      auto now = Clock::now();
      auto limit = std::chrono::duration_cast<Clock::duration>(timeout()).count();
      std::vector<std::shared_ptr<ConnectionBase>> all;
      {
        std::lock_guard lock(mutex);
        all.assign(connections.begin(), connections.end());
      }
      if (stopping && all.empty()) return;  // nothing keeps io.run() going any more
      bool drained = stopping && now >= drain_deadline;
      if (drained) {
        log::warning("milter: closing " + std::to_string(all.size()) +
                     " connection(s) still open after the drain time");
      }
      for (auto& c : all) {
        auto since = c->waiting_since.load();
        if (drained) {
          c->kill();
        } else if (since != 0 && now.time_since_epoch().count() - since > limit) {
          Metrics::get().timeouts.inc();
          log::warning("milter: closing connection: no command from the MTA for " +
                       std::to_string(options.timeout_seconds) + " s");
          c->kill();
        }
      }
      sweep();
    }));
  }
};

Engine::Engine(MilterOptions options, const Milter::Factory& factory)
    : impl_(std::make_shared<Impl>(std::move(options), factory)) {}

Engine::~Engine() {
  if (!impl_->unix_path.empty()) ::unlink(impl_->unix_path.c_str());
}

void Engine::open() {
  auto spec = net::SocketSpec::parse(impl_->options.listen);
  try {
    if (spec.kind == net::SocketSpec::Kind::kUnix) {
      impl_->unix_acceptor = net::listen_unix(impl_->io, spec.path, impl_->options.socket_mode,
                                              impl_->options.backlog);
      impl_->unix_path = spec.path;
    } else {
      impl_->tcp_acceptor = net::listen_tcp(impl_->io, spec, impl_->options.backlog);
      impl_->tcp = true;
    }
  } catch (const std::exception& ex) {
    throw std::runtime_error("cannot listen on " + impl_->options.listen + ": " + ex.what());
  }
}

void Engine::serve() {
  auto impl = impl_;
  asio::post(impl->accept_strand, [impl] {
    if (!impl->stopping) {
      if (impl->tcp_acceptor) impl->accept(*impl->tcp_acceptor);
      if (impl->unix_acceptor) impl->accept(*impl->unix_acceptor);
    }
    impl->sweep();
  });
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < std::max(1u, impl->options.engine_threads); ++i) {
    threads.emplace_back([impl] { impl->io.run(); });
  }
  impl->io.run();
  for (auto& t : threads) t.join();
}

void Engine::stop() {
  auto impl = impl_;
  if (impl->stopping.exchange(true)) return;
  asio::post(impl->accept_strand, [impl] {
    impl->drain_deadline = Clock::now() + std::chrono::seconds(10);
    boost::system::error_code ignored;
    if (impl->tcp_acceptor) impl->tcp_acceptor->close(ignored);
    if (impl->unix_acceptor) impl->unix_acceptor->close(ignored);
    impl->sweeper.cancel();  // its handler re-arms at the stopping pace
  });
}

bool Engine::listens_on_tcp() const { return impl_->tcp; }

int Engine::tcp_port() const {
  return impl_->tcp_acceptor ? impl_->tcp_acceptor->local_endpoint().port() : 0;
}

}  // namespace mxguard::common::milter
