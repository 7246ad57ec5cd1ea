// Implementation of mxguard-authpolicy's HTTP server (see server.h).
#include "policyd/authpolicy/server.h"

#include <openssl/crypto.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/asio.h"
#include "common/util/strings.h"

namespace mxguard::policyd::authpolicy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

common::metrics::Counter& http_errors(const std::string& reason) {
  return common::metrics::Registry::global().counter("mxguard_authpolicy_http_errors_total",
                                                     "HTTP requests refused or connections dropped",
                                                     {{"reason", reason}});
}

common::metrics::Counter& refused() {
  static auto& c = common::metrics::Registry::global().counter(
      "mxguard_authpolicy_connections_refused_total",
      "Connections closed at once because --max-connections were open");
  return c;
}

// HTTP's optional white space only (space, tab): any other byte is part of a secret.
std::string trim(std::string_view s) { return std::string(common::util::trim_blanks(s)); }

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

bool equal_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

HttpAnswer internal_error(std::string_view what) {
  http_errors("internal").inc();
  common::log::error("authpolicy: internal error: " + std::string(what));
  return {500, R"({"error":"internal error"})"};
}

std::pair<std::string, std::string> split_header(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return {trim(text), ""};
  return {trim(text.substr(0, colon)), trim(text.substr(colon + 1))};
}

std::string query_value(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

struct HttpServer::Impl {
  class Session;

  HttpOptions options;
  HttpHandler handler;
  std::string header_name, header_value;
  asio::io_context io{static_cast<int>(options.threads)};
  tcp::acceptor acceptor{io};
  // The acceptor is not thread-safe and several threads run io: accepts, their retry and
  // stop()'s close all run on this strand.
  asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(io)};
  std::atomic<std::size_t> active{0};
  std::atomic<bool> stopping{false};
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<Session>> sessions;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  Impl(HttpOptions o, HttpHandler h) : options(std::move(o)), handler(std::move(h)) {
    std::tie(header_name, header_value) = split_header(options.api_header);
  }

  void accept();
  std::chrono::steady_clock::time_point last_accept_warning{};  // accept handlers are serial
  void forget(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(sessions_mutex);
    sessions.erase(s);
  }
};

class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}

  void start() { read(); }

  // From stop(): an idle connection is closed; one with a request in flight finishes it first.
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) self->stream_.socket().close();
    });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_size);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_size));
    stream_.expires_after(server_.options.idle_timeout);
    busy_ = false;
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return finish();
    }
    if (ec == beast::error::timeout) {
      if (parser_->got_some()) http_errors("timeout").inc();
      return finish();
    }
    if (ec == http::error::body_limit) {
      http_errors("body-too-large").inc();
      return respond(413, R"({"error":"body too large"})", false);
    }
    if (ec == http::error::header_limit) {
      http_errors("header-too-large").inc();
      return respond(431, R"({"error":"request head too large"})", false);
    }
    if (ec) {
      http_errors("malformed").inc();
      common::log::warning(std::string("authpolicy: bad HTTP request: ") + ec.message());
      return respond(400, R"({"error":"bad request"})", false);
    }
    busy_ = true;
    auto& req = parser_->get();
    bool keep = req.keep_alive() && !server_.stopping;
    if (req.method() != http::verb::post) {
      http_errors("method").inc();
      return respond(405, R"({"error":"POST only"})", keep);
    }
    if (!server_.header_name.empty()) {
      auto it = req.find(server_.header_name);
      if (it == req.end() || !equal_secret(trim(sv(it->value())), server_.header_value)) {
        http_errors("unauthorized").inc();
        return respond(401, R"({"error":"unauthorized"})", keep);
      }
    }
    std::string command = query_value(sv(req.target()), "command");
    // The answer may come from another thread after the handler returned (a Redis reply): it
    // is posted onto this connection's strand, however it comes, and the work guard keeps
    // serve() running until then, also after stop().
    auto answered = std::make_shared<std::atomic<bool>>(false);
    HttpReply reply = [self = shared_from_this(), keep, answered,
                       work = asio::make_work_guard(stream_.get_executor())](HttpAnswer answer) {
      if (answered->exchange(true)) {
        // A second answer would interleave with the first on the socket.
        common::log::error("authpolicy: internal error: request answered twice (ignored)");
        return;
      }
      asio::post(self->stream_.get_executor(), [self, keep, answer = std::move(answer)]() mutable {
        self->respond(answer.status, std::move(answer.body), keep);
      });
    };
    try {
      server_.handler(command, req.body(), reply);
    } catch (const std::exception& ex) {
      reply(internal_error(ex.what()));
    }
  }

  void respond(unsigned status, std::string body, bool keep_alive) {
    res_ = {};
    res_.version(11);
    res_.result(status);
    res_.set(http::field::content_type, "application/json");
    res_.set(http::field::server, "mxguard-authpolicy");
    res_.keep_alive(keep_alive);
    res_.body() = std::move(body);
    res_.prepare_payload();
    stream_.expires_after(server_.options.idle_timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                        if (ec || !keep_alive || self->server_.stopping) return self->finish();
                        self->read();
                      });
  }

  void finish() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    server_.forget(shared_from_this());
  }

 public:
  ~Session() { --server_.active; }

 private:
  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  bool busy_ = false;
};

void HttpServer::Impl::accept() {
  acceptor.async_accept(
      asio::make_strand(io),
      asio::bind_executor(accept_strand, [this](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stopping) return;
        if (!ec) {
          if (active >= options.max_connections) {
            refused().inc();
            common::log::warning("authpolicy: --max-connections reached, connection closed");
            beast::error_code ignored;
            socket.close(ignored);
          } else {
            socket.set_option(tcp::no_delay(true));
            ++active;
            auto s = std::make_shared<Session>(*this, std::move(socket));
            {
              std::lock_guard lock(sessions_mutex);
              sessions.insert(s);
            }
            s->start();
          }
        } else {
          // Out of descriptors (EMFILE) and the like: accepting again at once would spin on the
          // same error. Wait a moment, and log at most once every 10 s.
          auto now = std::chrono::steady_clock::now();
          if (now - last_accept_warning >= std::chrono::seconds(10)) {
            last_accept_warning = now;
            common::log::warning("authpolicy: accept failed: " + ec.message() +
                                 " (retrying every 100 ms)");
          }
          auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(100));
          timer->async_wait(asio::bind_executor(accept_strand, [this, timer](beast::error_code) {
            if (!stopping) accept();
          }));
          return;
        }
        accept();
      }));
}

HttpServer::HttpServer(HttpOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() = default;

void HttpServer::open() {
  const auto& spec = impl_->options.listen;
  beast::error_code ec;
  auto address = asio::ip::make_address(spec.host, ec);
  if (ec) throw std::runtime_error("listen " + spec.to_string() + ": not an IP address");
  tcp::endpoint endpoint(address, static_cast<unsigned short>(spec.port));
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol());
  a.set_option(asio::socket_base::reuse_address(true));
  a.bind(endpoint, ec);
  if (ec) throw std::runtime_error("listen " + spec.to_string() + ": " + ec.message());
  a.listen(asio::socket_base::max_listen_connections);
}

int HttpServer::tcp_port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::serve() {
  impl_->accept();
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < impl_->options.threads; ++i) {
    threads.emplace_back([this] { impl_->io.run(); });
  }
  impl_->io.run();
  for (auto& t : threads) t.join();
}

void HttpServer::stop() {
  Impl& s = *impl_;
  s.stopping = true;
  asio::post(s.accept_strand, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    std::lock_guard lock(s.sessions_mutex);
    for (const auto& session : s.sessions) session->close_if_idle();
  });
}

}  // namespace mxguard::policyd::authpolicy
