// Drives the policy server over real loopback sockets: pipelining, limits, garbage, idle
// timeout, handler exceptions, and graceful stop.
#include "common/policy/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "tests/fixtures/process.h"

namespace mxguard::common::policy {
namespace {

using namespace std::chrono_literals;

class Client {
 public:
  explicit Client(int port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    // A small receive buffer (set before connect, so the window is small) lets a test play a
    // peer that stops reading.
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{3, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{3, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& s) {
    ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), (ssize_t)s.size());
  }
  // Reads until `replies` complete replies arrived or the peer closed; returns what came.
  std::string read_replies(int replies) {
    std::string out;
    char buf[4096];
    while (true) {
      int seen = 0;
      for (std::size_t p = out.find("\n\n"); p != std::string::npos; p = out.find("\n\n", p + 2)) {
        ++seen;
      }
      if (seen >= replies) return out;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  int fd() const { return fd_; }
  bool closed_by_peer() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class PolicyServerTest : public ::testing::Test {
 protected:
  template <class H>
  void start(ServerOptions o, H h) {
    server_ = std::make_unique<Server>(std::move(o), std::move(h));
    server_->open();
    thread_ = std::thread([this] { server_->serve(); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  static ServerOptions tcp_options() {
    ServerOptions o;
    o.listen.push_back(
        net::SocketSpec{net::SocketSpec::Kind::kInet, "", "127.0.0.1", testing::free_tcp_port()});
    return o;
  }
  static Handler echo_sender() {
    return [](const Request& r) { return "DUNNO " + std::string(r.sender()); };
  }
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(PolicyServerTest, AnswersManyRequestsOnOneConnection) {
  start(tcp_options(), echo_sender());
  Client c(server_->tcp_port());
  ASSERT_TRUE(c.connected());
  c.send("request=smtpd_access_policy\nsender=a@x\n\n");
  EXPECT_EQ(c.read_replies(1), "action=DUNNO a@x\n\n");
  // Two requests in one write, the second split across writes.
  c.send("sender=b@x\n\nsender=c");
  c.send("@x\n\n");
  EXPECT_EQ(c.read_replies(2), "action=DUNNO b@x\n\naction=DUNNO c@x\n\n");
}

TEST_F(PolicyServerTest, ServesUnixSockets) {
  testing::TempDir dir;
  ServerOptions o;
  std::string path = (dir / "policy.sock").string();
  o.listen.push_back(net::SocketSpec{net::SocketSpec::Kind::kUnix, path, "", 0});
  start(o, echo_sender());
  Client c(path);
  ASSERT_TRUE(c.connected());
  c.send("sender=u@x\n\n");
  EXPECT_EQ(c.read_replies(1), "action=DUNNO u@x\n\n");
}

TEST_F(PolicyServerTest, GarbageClosesOnlyThatConnection) {
  start(tcp_options(), echo_sender());
  Client good(server_->tcp_port());
  Client bad(server_->tcp_port());
  bad.send(
      std::string("\x16\x03\x01\x00\xa5"
                  "binary\0garbage\n",
                  20));
  EXPECT_TRUE(bad.closed_by_peer());
  good.send("sender=ok@x\n\n");
  EXPECT_EQ(good.read_replies(1), "action=DUNNO ok@x\n\n");
}

TEST_F(PolicyServerTest, OversizedLineClosesConnection) {
  start(tcp_options(), echo_sender());
  Client c(server_->tcp_port());
  c.send("sender=" + std::string(10000, 'a') + "\n\n");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(PolicyServerTest, HandlerExceptionBecomesErrorAction) {
  start(tcp_options(), [](const Request& r) -> std::string {
    if (r.sender() == "boom@x") throw std::runtime_error("store exploded");
    return "DUNNO";
  });
  Client c(server_->tcp_port());
  c.send("sender=boom@x\n\nsender=fine@x\n\n");
  EXPECT_EQ(c.read_replies(2),
            "action=DEFER_IF_PERMIT Service temporarily unavailable\n\naction=DUNNO\n\n");
}

TEST_F(PolicyServerTest, IdleClientsAreDropped) {
  auto o = tcp_options();
  o.idle_timeout = 200ms;
  start(o, echo_sender());
  Client c(server_->tcp_port());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(PolicyServerTest, ConnectionLimitRefusesExtraConnectionsWithoutStarvingOthers) {
  auto o = tcp_options();
  o.max_connections = 2;
  start(o, echo_sender());
  Client a(server_->tcp_port());
  Client b(server_->tcp_port());
  a.send("sender=a@x\n\n");
  b.send("sender=b@x\n\n");
  EXPECT_EQ(a.read_replies(1), "action=DUNNO a@x\n\n");
  EXPECT_EQ(b.read_replies(1), "action=DUNNO b@x\n\n");
  Client extra(server_->tcp_port());
  EXPECT_TRUE(extra.closed_by_peer());
  a.send("sender=a2@x\n\n");
  EXPECT_EQ(a.read_replies(1), "action=DUNNO a2@x\n\n");
}

TEST_F(PolicyServerTest, SlowHandlerDoesNotBlockOtherConnections) {
  auto o = tcp_options();
  o.threads = 2;
  start(o, [](const Request& r) {
    if (r.sender() == "slow@x") std::this_thread::sleep_for(1500ms);
    return std::string("DUNNO");
  });
  Client slow(server_->tcp_port());
  Client fast(server_->tcp_port());
  slow.send("sender=slow@x\n\n");
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  fast.send("sender=fast@x\n\n");
  EXPECT_EQ(fast.read_replies(1), "action=DUNNO\n\n");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(slow.read_replies(1), "action=DUNNO\n\n");
}

TEST_F(PolicyServerTest, StopAnswersInFlightRequestThenReturns) {
  start(tcp_options(), [](const Request&) {
    std::this_thread::sleep_for(300ms);
    return std::string("DUNNO");
  });
  Client busy(server_->tcp_port());
  Client idle(server_->tcp_port());
  busy.send("sender=a@x\n\n");
  std::this_thread::sleep_for(100ms);
  server_->stop();
  EXPECT_EQ(busy.read_replies(1), "action=DUNNO\n\n");
  EXPECT_TRUE(idle.closed_by_peer());
  thread_.join();  // serve() returned
}

// Issue 15, finding 6: a peer that sends a request one byte at a time, each within the idle
// timeout, used to keep its connection forever. The whole request now has request_timeout.
TEST_F(PolicyServerTest, TrickledRequestIsClosedAtItsDeadline) {
  auto o = tcp_options();
  o.idle_timeout = 5s;
  o.request_timeout = 300ms;
  start(o, echo_sender());
  Client c(server_->tcp_port());
  ASSERT_TRUE(c.connected());
  auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 30 && !closed; ++i) {
    closed = ::send(c.fd(), "x", 1, MSG_NOSIGNAL) != 1;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(closed || c.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
}

// A huge reply (16 MB) to a peer that never reads fills the socket buffers. The write times
// out and the connection's slot (the only one here) is free again for the next client.
TEST_F(PolicyServerTest, PeerThatNeverReadsLosesItsSlot) {
  auto o = tcp_options();
  o.max_connections = 1;
  o.write_timeout = 300ms;
  std::string huge(16 << 20, 'x');
  start(o, [huge](const Request& r) {
    return r.sender() == "big@x" ? "DUNNO " + huge : std::string("DUNNO");
  });
  {
    Client stuck(server_->tcp_port(), 4096);
    stuck.send("sender=big@x\n\n");
    // stuck never reads (it is closed when it goes out of scope, after the check below). Until
    // its write times out, the one slot is taken and a new client is refused; after that, the
    // next one is served. Polled, not slept: building the 16 MB reply is slow under TSan.
    std::string reply;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (reply.empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(200ms);
      Client next(server_->tcp_port());
      const std::string req = "sender=n@x\n\n";
      if (::send(next.fd(), req.data(), req.size(), MSG_NOSIGNAL) < 0) continue;  // refused
      reply = next.read_replies(1);
    }
    EXPECT_EQ(reply, "action=DUNNO\n\n");
  }
}

// stop() waits drain_timeout for busy connections, then closes them: serve() returns even
// while a peer refuses to read its reply.
TEST_F(PolicyServerTest, StopClosesStuckConnectionsAfterTheDrainTime) {
  auto o = tcp_options();
  o.write_timeout = 60s;
  o.drain_timeout = 300ms;
  std::string huge(16 << 20, 'x');
  start(o, [huge](const Request&) { return "DUNNO " + huge; });
  Client stuck(server_->tcp_port(), 4096);
  stuck.send("sender=big@x\n\n");
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  auto done = std::async(std::launch::async, [this] { thread_.join(); });
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(PolicyServerTest, AsyncRepliesFromOtherThreadsKeepRequestOrder) {
  auto o = tcp_options();
  o.threads = 1;  // one server thread: the async handler must not hold it
  std::vector<std::thread> workers;
  std::mutex m;
  start(o, AsyncHandler([&](Request r, Reply reply) {
          std::string sender(r.sender());
          auto delay = sender == "slow@x" ? 400 : 10;
          std::lock_guard lock(m);
          workers.emplace_back([reply, sender, delay] {
            std::this_thread::sleep_for(std::chrono::milliseconds(delay));
            reply("DUNNO " + sender);
          });
        }));
  Client a(server_->tcp_port());
  Client b(server_->tcp_port());
  a.send("sender=slow@x\n\nsender=fast@x\n\n");  // pipelined: answers in request order
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  b.send("sender=other@x\n\n");
  EXPECT_EQ(b.read_replies(1), "action=DUNNO other@x\n\n");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 300ms) << "a slow async check blocked others";
  EXPECT_EQ(a.read_replies(2), "action=DUNNO slow@x\n\naction=DUNNO fast@x\n\n");
  server_->stop();
  thread_.join();
  std::lock_guard lock(m);
  for (auto& w : workers) w.join();
}

}  // namespace
}  // namespace mxguard::common::policy
