// Implementation of the metrics HTTP endpoint: a deliberately tiny HTTP/1.0 responder.
#include "common/metrics/http_server.h"

#include <chrono>
#include <thread>

#include "common/log/log.h"
#include "common/net/socket_spec.h"
#include "common/util/asio.h"

namespace mxguard::common::metrics {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::size_t kMaxRequest = 8192;
// A scraper needs one connection; a few more for people with curl. Past this, new connections
// are closed at once, so a flood cannot take the daemon's descriptors.
constexpr int kMaxConnections = 16;

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  // `open` counts live exchanges (the io thread is the only one touching it).
  Exchange(tcp::socket socket, Registry& registry, const Health* health, int& open)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        registry_(registry),
        health_(health),
        open_(open) {
    ++open_;
  }
  ~Exchange() { --open_; }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  void start() {
    timer_.expires_after(std::chrono::seconds(5));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->socket_.close();
    });
    asio::async_read_until(socket_, asio::dynamic_buffer(request_, kMaxRequest), "\r\n\r\n",
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                             if (ec) {
                               self->timer_.cancel();
                               return;
                             }
                             self->respond();
                           });
  }

 private:
  void respond() {
    std::string status = "200 OK";
    std::string type = "text/plain; version=0.0.4";
    std::string body;
    if (request_.rfind("GET /metrics ", 0) == 0 || request_.rfind("GET / ", 0) == 0) {
      body = registry_.render();
    } else if (request_.rfind("GET /healthz ", 0) == 0) {
      // Runs the checks on this (the endpoint's) thread: a check waiting on its dependency
      // delays other scrapes, never mail.
      Health::Report report = health_ ? health_->evaluate() : Health::Report{true, "ok\n"};
      if (!report.ok) status = "503 Service Unavailable";
      type = "text/plain; charset=utf-8";
      body = std::move(report.text);
    } else {
      status = "404 Not Found";
      body = "not found\n";
    }
    response_ = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                "\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\nConnection: close\r\n\r\n" + body;
    asio::async_write(socket_, asio::buffer(response_),
                      [self = shared_from_this()](boost::system::error_code, std::size_t) {
                        boost::system::error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
                        self->timer_.cancel();
                      });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  Registry& registry_;
  const Health* health_;
  int& open_;
  std::string request_;
  std::string response_;
};

}  // namespace

struct HttpServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  Registry& registry;
  const Health* health;
  std::thread thread;

  Impl(Registry& r, const Health* h) : registry(r), health(h) {}

  int open = 0;  // live exchanges (io thread only)
  asio::steady_timer retry{io};
  std::chrono::steady_clock::time_point last_warning{};

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (open >= kMaxConnections) {
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          std::make_shared<Exchange>(std::move(socket), registry, health, open)->start();
        }
        accept();
        return;
      }
      // Out of descriptors and the like: as the policy servers do, wait 100 ms instead of
      // spinning on the error, and log at most once every 10 s.
      auto now = std::chrono::steady_clock::now();
      if (now - last_warning >= std::chrono::seconds(10)) {
        last_warning = now;
        log::warning("metrics: accept failed: " + ec.message() + " (retrying every 100 ms)");
      }
      retry.expires_after(std::chrono::milliseconds(100));
      retry.async_wait([this](boost::system::error_code wait_ec) {
        if (!wait_ec) accept();
      });
    });
  }
};

HttpServer::HttpServer(const std::string& listen_spec, Registry& registry, const Health* health)
    : impl_(std::make_unique<Impl>(registry, health)) {
  auto spec = net::SocketSpec::parse(listen_spec);
  if (spec.kind == net::SocketSpec::Kind::kUnix) {
    throw std::invalid_argument("metrics-listen must be inet:host:port");
  }
  try {
    tcp::endpoint ep(asio::ip::make_address(spec.host), static_cast<unsigned short>(spec.port));
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen();
  } catch (const boost::system::system_error& ex) {
    throw std::runtime_error("metrics-listen " + listen_spec + ": " + ex.what());
  }
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void HttpServer::stop() {
  if (!impl_) return;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace mxguard::common::metrics
