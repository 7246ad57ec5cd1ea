// mxguard-authpolicy-load: a load generator for Dovecot auth-policy servers. It behaves like a
// busy Dovecot auth process: N keep-alive HTTP connections, each POSTing one JSON request
// (Dovecot 2.3's default attributes) and waiting for the answer before the next. It measures
// throughput and latency and checks every answer ({"status":N,...} with HTTP 200).
// Must never send traffic outside 127.0.0.0/8: it refuses other targets.
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/util/asio.h"

namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string host = "127.0.0.1";
  int port = 10060;
  int connections = 32;
  long requests = 20000;
  long warmup = 1000;
  std::string command = "allow";  // allow | report | mixed
  std::string api_header;
  int addresses = 5000;  // distinct remote addresses in the requests (198.18.0.0/15)
  int logins = 2000;
};

struct Stats {
  std::vector<double> latency_us;
  long sent = 0;
  long done = 0;
  long measured_start = -1;
  Clock::time_point t0, t1;
  std::map<std::string, long> statuses;
  long errors = 0;
};

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(asio::io_context& io, const Config& c, Stats& s, std::mt19937& rng)
      : socket_(io), config_(c), stats_(s), rng_(rng) {}

  void start(const tcp::endpoint& ep) {
    socket_.connect(ep);
    socket_.set_option(tcp::no_delay(true));
    next();
  }

 private:
  std::string body() {
    int a = std::uniform_int_distribution<int>(0, config_.addresses - 1)(rng_);
    int l = std::uniform_int_distribution<int>(0, config_.logins - 1)(rng_);
    int p = std::uniform_int_distribution<int>(0, 4095)(rng_);
    char remote[32];
    std::snprintf(remote, sizeof remote, "198.%d.%d.%d", 18 + (a >> 16), (a >> 8) & 255, a & 255);
    char pw[8];
    std::snprintf(pw, sizeof pw, "%03x", p);
    bool report = config_.command == "report" ||
                  (config_.command == "mixed" && std::uniform_int_distribution<int>(0, 1)(rng_));
    command_ = report ? "report" : "allow";
    std::string b = R"({"login":"user)" + std::to_string(l) + R"(@example.org","pwhash":")" + pw +
                    R"(","remote":")" + remote +
                    R"(","device_id":"","protocol":"imap","session_id":"bench)" +
                    std::to_string(stats_.sent) + "\"";
    if (report) b += R"(,"success":false,"policy_reject":false)";
    return b + "}";
  }

  void next() {
    if (stats_.sent >= config_.warmup + config_.requests) return;
    if (stats_.sent == config_.warmup) stats_.t0 = Clock::now();
    ++stats_.sent;
    std::string b = body();
    request_ = "POST /?command=" + command_ + " HTTP/1.1\r\nHost: " + config_.host +
               "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(b.size()) +
               "\r\n";
    if (!config_.api_header.empty()) request_ += config_.api_header + "\r\n";
    request_ += "\r\n" + b;
    measured_ = stats_.sent > config_.warmup;
    started_ = Clock::now();
    asio::async_write(socket_, asio::buffer(request_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return self->fail(ec.message());
                        self->read_head();
                      });
  }

  void read_head() {
    asio::async_read_until(
        socket_, buffer_, "\r\n\r\n",
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          if (ec) return self->fail(ec.message());
          std::string head(asio::buffers_begin(self->buffer_.data()),
                           asio::buffers_begin(self->buffer_.data()) + static_cast<long>(n));
          self->buffer_.consume(n);
          auto cl = head.find("Content-Length: ");
          if (cl == std::string::npos) cl = head.find("content-length: ");
          std::size_t len = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
          bool ok = head.rfind("HTTP/1.1 200", 0) == 0;
          self->read_body(len, ok);
        });
  }

  void read_body(std::size_t len, bool ok) {
    std::size_t have = buffer_.size();
    auto finish = [self = shared_from_this(), len, ok] {
      std::string body(asio::buffers_begin(self->buffer_.data()),
                       asio::buffers_begin(self->buffer_.data()) + static_cast<long>(len));
      self->buffer_.consume(len);
      auto s = body.find("\"status\":");
      if (!ok || s == std::string::npos) {
        ++self->stats_.errors;
      } else {
        std::string st = body.substr(s + 9, body.find_first_of(",}", s + 9) - s - 9);
        ++self->stats_.statuses[self->command_ + " status=" + st];
      }
      auto now = Clock::now();
      if (self->measured_) {
        self->stats_.latency_us.push_back(
            std::chrono::duration<double, std::micro>(now - self->started_).count());
      }
      ++self->stats_.done;
      if (self->stats_.done == self->config_.warmup + self->config_.requests) {
        self->stats_.t1 = now;
      }
      self->next();
    };
    if (have >= len) return finish();
    asio::async_read(
        socket_, buffer_, asio::transfer_exactly(len - have),
        [self = shared_from_this(), finish](boost::system::error_code ec, std::size_t) {
          if (ec) return self->fail(ec.message());
          finish();
        });
  }

  void fail(const std::string& why) {
    std::cerr << "connection failed: " << why << "\n";
    ++stats_.errors;
  }

  tcp::socket socket_;
  const Config& config_;
  Stats& stats_;
  std::mt19937& rng_;
  std::string request_;
  std::string command_;
  asio::streambuf buffer_;
  bool measured_ = false;
  Clock::time_point started_;
};

}  // namespace

int main(int argc, char** argv) {
  Config c;
  po::options_description desc("mxguard-authpolicy-load options");
  desc.add_options()("help,h", "this text")("host", po::value(&c.host)->default_value(c.host),
                                            "server address (loopback only)")(
      "port", po::value(&c.port)->default_value(c.port), "server port")(
      "connections", po::value(&c.connections)->default_value(c.connections),
      "keep-alive connections")("requests", po::value(&c.requests)->default_value(c.requests),
                                "measured requests")(
      "warmup", po::value(&c.warmup)->default_value(c.warmup), "requests before measuring")(
      "command", po::value(&c.command)->default_value(c.command), "allow, report or mixed")(
      "api-header", po::value(&c.api_header), "'Name: value' sent with every request")(
      "addresses", po::value(&c.addresses)->default_value(c.addresses),
      "distinct remote addresses")("logins", po::value(&c.logins)->default_value(c.logins),
                                   "distinct logins");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& ex) {
    std::cerr << ex.what() << "\n";
    return 64;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  auto address = asio::ip::make_address(c.host);
  if (!address.is_loopback()) {
    std::cerr << "refusing a non-loopback target\n";
    return 64;
  }
  asio::io_context io;
  Stats stats;
  std::mt19937 rng(42);
  tcp::endpoint ep(address, static_cast<unsigned short>(c.port));
  std::vector<std::shared_ptr<Conn>> conns;
  for (int i = 0; i < c.connections; ++i) {
    conns.push_back(std::make_shared<Conn>(io, c, stats, rng));
    conns.back()->start(ep);
  }
  conns.clear();
  io.run();
  auto& l = stats.latency_us;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) {
    return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<std::size_t>(p * l.size()))];
  };
  double secs = std::chrono::duration<double>(stats.t1 - stats.t0).count();
  std::printf(
      "command=%s connections=%d requests=%zu seconds=%.2f decisions/s=%.0f p50_us=%.0f "
      "p99_us=%.0f max_us=%.0f errors=%ld\n",
      c.command.c_str(), c.connections, l.size(), secs, secs > 0 ? l.size() / secs : 0, pct(0.5),
      pct(0.99), l.empty() ? 0 : l.back(), stats.errors);
  for (const auto& [k, v] : stats.statuses) std::printf("  %s: %ld\n", k.c_str(), v);
  return stats.errors == 0 ? 0 : 1;
}
