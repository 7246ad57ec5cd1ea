// Drives the metrics endpoint over loopback: it answers a scrape and /healthz (200 or 503 with
// the failing checks), and a flood of idle connections neither takes more than its connection
// cap nor starves the scraper for long.
#include "common/metrics/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/health.h"
#include "common/metrics/metrics.h"
#include "tests/fixtures/process.h"

namespace mxguard::common::metrics {
namespace {

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends a GET and returns everything until the server closes (or 3 s pass).
std::string get(int fd, const std::string& path) {
  std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return "";
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

TEST(MetricsHttpServerTest, AnswersAScrape) {
  Registry registry;
  registry.counter("mxguard_test_scrapes_total", "test counter").inc(3);
  HttpServer server("inet:127.0.0.1:" + std::to_string(testing::free_tcp_port()), registry);
  server.start();
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  std::string reply = get(fd, "/metrics");
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("mxguard_test_scrapes_total 3"), std::string::npos) << reply;
}

std::string get_once(int port, const std::string& path) {
  int fd = connect_to(port);
  if (fd < 0) return "";
  std::string reply = get(fd, path);
  ::close(fd);
  return reply;
}

TEST(MetricsHttpServerTest, HealthzSaysOkOr503WithTheFailingChecks) {
  Registry registry;
  Health health;
  std::atomic<bool> redis_up{true};
  health.add("serving", [] { return Health::Result::good(); });
  health.add("redis", [&] {
    return redis_up ? Health::Result::good() : Health::Result::bad("connection refused");
  });
  HttpServer server("inet:127.0.0.1:" + std::to_string(testing::free_tcp_port()), registry,
                    &health);
  server.start();
  std::string reply = get_once(server.port(), "/healthz");
  EXPECT_EQ(reply.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("\r\n\r\nok\n"), std::string::npos) << reply;
  redis_up = false;
  reply = get_once(server.port(), "/healthz");
  EXPECT_EQ(reply.rfind("HTTP/1.0 503 Service Unavailable\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("\r\n\r\nredis: connection refused\n"), std::string::npos) << reply;
  // The metrics are still served, and anything else is not found.
  EXPECT_EQ(get_once(server.port(), "/metrics").rfind("HTTP/1.0 200 OK", 0), 0u);
  EXPECT_EQ(get_once(server.port(), "/healthz/x").rfind("HTTP/1.0 404", 0), 0u);
}

TEST(MetricsHttpServerTest, HealthzWithoutChecksIsOk) {
  Registry registry;
  HttpServer server("inet:127.0.0.1:" + std::to_string(testing::free_tcp_port()), registry);
  server.start();
  std::string reply = get_once(server.port(), "/healthz");
  EXPECT_EQ(reply.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << reply;
}

// Issue 15, finding 8: every connection used to get an exchange (and a descriptor) until its
// 5 s timer ran out. Past 16 open ones, a new connection is closed at once.
TEST(MetricsHttpServerTest, ConnectionsOverTheCapAreClosedAtOnce) {
  Registry registry;
  HttpServer server("inet:127.0.0.1:" + std::to_string(testing::free_tcp_port()), registry);
  server.start();
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    int fd = connect_to(server.port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // Let the server accept all sixteen before the next one arrives.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int extra = connect_to(server.port());
  ASSERT_GE(extra, 0);
  char c;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(::recv(extra, &c, 1, 0), 0) << "the connection over the cap is closed";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  ::close(extra);
  for (int fd : idle) ::close(fd);
  // Once they are gone, a scrape is answered again.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(get(fd, "/metrics").rfind("HTTP/1.0 200 OK", 0), 0u);
  ::close(fd);
}

}  // namespace
}  // namespace mxguard::common::metrics
