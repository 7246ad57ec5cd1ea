// Starts the real mxguard-authpolicy binary with a per-test config and checks what Dovecot and
// an administrator rely on: the HTTP protocol and its limits, the API header, decisions over
// keep-alive connections, --check-config errors, SIGHUP reload, metrics, the ban subcommand and
// SIGTERM shutdown; and that an allow waiting on Redis holds no server thread (issue 18).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "tests/fixtures/http_client.h"
#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using namespace std::chrono_literals;

const std::string kBinary =
    std::string(MXGUARD_BINARY_DIR) + "/policyd/authpolicy/mxguard-authpolicy";
const std::vector<std::pair<std::string, std::string>> kKey{{"X-API-Key", "s3cret"}};

std::string report(const std::string& remote, const std::string& login, bool success,
                   const std::string& pwhash = "") {
  return R"({"login":")" + login + R"(","pwhash":")" + pwhash + R"(","remote":")" + remote +
         R"(","device_id":"","protocol":"imap","session_id":"S)" + login + R"(","success":)" +
         (success ? "true" : "false") + R"(,"policy_reject":false})";
}

std::string allow(const std::string& remote, const std::string& login) {
  return R"({"login":")" + login + R"(","pwhash":"abc","remote":")" + remote +
         R"(","device_id":"","protocol":"imap","session_id":"S)" + login + R"("})";
}

std::string post_text(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: s3cret\r\nContent-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// HTTP pipelining: every request in one write on one connection, then the answers in the order
// they come (a read waits at most 10 s).
std::vector<HttpResponse> pipelined(int port, const std::vector<std::string>& requests) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  timeval tv{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string all;
  for (const auto& r : requests) all += r;
  asio::write(socket, asio::buffer(all));
  boost::beast::flat_buffer buffer;
  std::vector<HttpResponse> out;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    http::response<http::string_body> res;
    boost::system::error_code ec;
    http::read(socket, buffer, res, ec);
    if (ec) break;
    out.push_back({static_cast<int>(res.result_int()), res.body(), res.keep_alive()});
  }
  return out;
}

long long count_of(const std::string& text, const std::string& what) {
  long long n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

class AuthPolicyDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_tcp_port();
    metrics_port_ = free_tcp_port();
    write_config("");
  }
  void write_config(const std::string& extra) {
    write_file(dir_ / "authpolicy.conf",
               "listen = inet:127.0.0.1:" + std::to_string(port_) + "\n" +
                   "redis-url = " + redis_.url() + "\n" +
                   "metrics-listen = inet:127.0.0.1:" + std::to_string(metrics_port_) + "\n" +
                   "api-header = X-API-Key: s3cret\n"
                   "ip-tarpit = 2/10m\n"
                   "ip-limits = 4/10m\n"
                   "max-connections = 4\n"
                   "max-body-size = 1k\n"
                   "idle-timeout = 2s\n"
                   "async-reports = " +
                   (async_ ? "yes" : "no") + "\n" + extra);
  }
  Process start() {
    Process p({kBinary, "--foreground", "--log-target", "stderr", "-c",
               (dir_ / "authpolicy.conf").string()},
              dir_ / "authpolicy.log");
    if (!wait_for_tcp("127.0.0.1", port_, 10s)) {
      ADD_FAILURE() << "mxguard-authpolicy did not start:\n" << p.log();
    }
    return p;
  }
  int ban(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv{kBinary, "ban", "-c", (dir_ / "authpolicy.conf").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, out);
  }

  TempDir dir_;
  RedisServer redis_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool async_ = false;  // most tests check a report's effect at once
};

TEST_F(AuthPolicyDaemonTest, TarpitsThenRejectsOverKeepAlive) {
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  auto r = c.post("/?command=allow", allow("192.0.2.1", "alice"), kKey);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"msg":"","status":0})");
  EXPECT_TRUE(r.keep_alive);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(c.post("/?command=report", report("192.0.2.1", "u" + std::to_string(i), false), kKey)
                  .status,
              200);
  }
  EXPECT_EQ(policy_status(c.post("/?command=allow", allow("192.0.2.1", "x"), kKey).body), 2);
  for (int i = 2; i < 5; ++i) {
    c.post("/?command=report", report("192.0.2.1", "u" + std::to_string(i), false), kKey);
  }
  r = c.post("/?command=allow", allow("192.0.2.1", "alice"), kKey);
  EXPECT_EQ(r.body, R"({"msg":"Too many failed logins, try again later","status":-1})");
  // Dovecot appends '&command=' when the URL ends in '&'.
  EXPECT_EQ(policy_status(c.post("/policy?x=1&command=allow", allow("192.0.2.9", "a"), kKey).body),
            0);
  std::string log = daemon.log();
  EXPECT_NE(log.find("Salice: command=allow result=reject status=-1 remote=192.0.2.1 "
                     "login=alice protocol=imap success=- reason=\"ip blocked for 3600s\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("warning: blocked ip 192.0.2.1 for 3600s"), std::string::npos) << log;
  std::string metrics = http_get_metrics(metrics_port_);
  EXPECT_NE(
      metrics.find(R"(mxguard_authpolicy_decisions_total{command="allow",result="reject"} 1)"),
      std::string::npos)
      << metrics;
}

TEST_F(AuthPolicyDaemonTest, RefusesRequestsWithoutTheApiHeader) {
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  EXPECT_EQ(c.post("/?command=allow", allow("192.0.2.1", "a")).status, 401);
  EXPECT_EQ(c.post("/?command=allow", allow("192.0.2.1", "a"), {{"X-API-Key", "s3cre"}}).status,
            401);
  EXPECT_EQ(c.post("/?command=allow", allow("192.0.2.1", "a"), {{"x-api-key", "s3cret"}}).status,
            200);  // header names are case-insensitive
  EXPECT_EQ(daemon.log().find("command=allow"), daemon.log().rfind("command=allow"));
}

TEST_F(AuthPolicyDaemonTest, ProtocolLimits) {
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  EXPECT_EQ(
      c.post("/?command=allow", "{\"login\":\"" + std::string(2000, 'a') + "\"}", kKey).status,
      413);
  EXPECT_EQ(c.post("/?command=allow", "not json", kKey).status, 400);
  EXPECT_EQ(c.post("/?command=delete", "{}", kKey).status, 400);
  EXPECT_EQ(c.raw("GET /?command=allow HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret\r\n\r\n").status,
            405);
  EXPECT_EQ(c.raw("POST /?command=allow HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'b') +
                  "\r\n\r\n")
                .status,
            431);
  EXPECT_EQ(c.raw("BLAH\r\n\r\n").status, 400);
  // Still serving after all that.
  EXPECT_EQ(c.post("/?command=allow", allow("192.0.2.1", "a"), kKey).status, 200);
}

TEST_F(AuthPolicyDaemonTest, ConnectionLimitAndIdleTimeout) {
  Process daemon = start();
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<HttpClient>("127.0.0.1", port_));
    ASSERT_EQ(clients.back()->post("/?command=allow", allow("192.0.2.1", "a"), kKey).status, 200);
  }
  HttpClient fifth("127.0.0.1", port_);
  EXPECT_EQ(fifth.post("/?command=allow", allow("192.0.2.1", "a"), kKey).status, 0);
  std::this_thread::sleep_for(2500ms);  // idle-timeout 2s closes the four
  EXPECT_EQ(fifth.post("/?command=allow", allow("192.0.2.1", "a"), kKey).status, 200);
  EXPECT_NE(http_get_metrics(metrics_port_).find("mxguard_authpolicy_connections_refused_total 1"),
            std::string::npos);
}

TEST_F(AuthPolicyDaemonTest, RedisDownAllowsAndSays) {
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  redis_.stop();
  auto r = c.post("/?command=allow", allow("192.0.2.1", "bob"), kKey);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(policy_status(r.body), 0);
  EXPECT_NE(daemon.log().find("Sbob: Redis unavailable, login allowed"), std::string::npos)
      << daemon.log();
  EXPECT_NE(http_get_metrics(metrics_port_).find("mxguard_authpolicy_store_errors_total 1"),
            std::string::npos);
}

// Issue 20: /healthz is 200 while Redis answers, 503 naming Redis once it is stopped (no login
// needed to notice), and 200 again when it is back.
TEST_F(AuthPolicyDaemonTest, HealthzFollowsRedis) {
  Process daemon = start();
  std::string h = wait_for_http_status(metrics_port_, "/healthz", 200, 5s);
  EXPECT_EQ(h.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << h << daemon.log();
  redis_.stop();
  h = wait_for_http_status(metrics_port_, "/healthz", 503, 10s);
  EXPECT_EQ(h.rfind("HTTP/1.0 503 Service Unavailable\r\n", 0), 0u) << h << daemon.log();
  EXPECT_NE(h.find("\r\n\r\nredis: "), std::string::npos) << h;
  EXPECT_NE(h.find(redis_.url()), std::string::npos) << h;
  redis_.start();
  h = wait_for_http_status(metrics_port_, "/healthz", 200, 15s);
  EXPECT_EQ(h.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << h << daemon.log();
}

TEST_F(AuthPolicyDaemonTest, CheckConfigNamesFileAndLine) {
  write_config("ip-limits = 10/1x\n");
  std::string out;
  EXPECT_EQ(
      run_command({kBinary, "-c", (dir_ / "authpolicy.conf").string(), "--check-config"}, &out),
      78);
  EXPECT_NE(out.find("authpolicy.conf:"), std::string::npos) << out;
  EXPECT_NE(out.find("ip-limits"), std::string::npos) << out;
  write_config("api-header = no colon here\n");
  EXPECT_EQ(
      run_command({kBinary, "-c", (dir_ / "authpolicy.conf").string(), "--check-config"}, &out),
      78);
  write_config("listen = unix:/tmp/x.sock\n");
  EXPECT_EQ(
      run_command({kBinary, "-c", (dir_ / "authpolicy.conf").string(), "--check-config"}, &out),
      78);
  write_config("");
  EXPECT_EQ(
      run_command({kBinary, "-c", (dir_ / "authpolicy.conf").string(), "--check-config"}, &out), 0)
      << out;
  EXPECT_EQ(run_command({kBinary, "--version"}, &out), 0);
  EXPECT_EQ(out.rfind("mxguard-authpolicy ", 0), 0u);
}

TEST_F(AuthPolicyDaemonTest, ReloadsOnSighupAndStopsOnSigterm) {
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  for (int i = 0; i < 5; ++i) c.post("/?command=report", report("192.0.2.5", "u", false), kKey);
  write_config("reject-message = Go away\n");
  ::kill(daemon.pid(), SIGHUP);
  for (int i = 0; i < 50 && daemon.log().find("reload: done") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(c.post("/?command=allow", allow("192.0.2.5", "a"), kKey).body,
            R"({"msg":"Go away","status":-1})");
  write_config("ip-limits = broken\n");
  ::kill(daemon.pid(), SIGHUP);
  for (int i = 0; i < 50 && daemon.log().find("reload failed") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(c.post("/?command=allow", allow("192.0.2.5", "a"), kKey).body,
            R"({"msg":"Go away","status":-1})");
  ::kill(daemon.pid(), SIGTERM);  // with an idle keep-alive connection open
  EXPECT_EQ(daemon.wait_exit(5s), 0) << daemon.log();
}

TEST_F(AuthPolicyDaemonTest, AsyncReportsAreAnsweredAtOnceCountedAndDrainedAtStop) {
  async_ = true;
  write_config("");
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  for (int i = 0; i < 5; ++i) {
    auto r = c.post("/?command=report", report("192.0.2.77", "u" + std::to_string(i), false), kKey);
    EXPECT_EQ(r.body, R"({"msg":"","status":0})");
  }
  int status = 0;
  for (int i = 0; i < 50 && status != -1; ++i) {
    status = policy_status(c.post("/?command=allow", allow("192.0.2.77", "a"), kKey).body);
    if (status != -1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(status, -1) << daemon.log();
  // Reports still queued at SIGTERM are counted and logged before the exit.
  for (int i = 0; i < 200; ++i) {
    c.post("/?command=report", report("198.51.100." + std::to_string(i % 200), "x", false), kKey);
  }
  ::kill(daemon.pid(), SIGTERM);
  EXPECT_EQ(daemon.wait_exit(10s), 0);
  std::string log = daemon.log();
  std::size_t reports = 0;
  for (auto p = log.find("command=report"); p != std::string::npos;
       p = log.find("command=report", p + 1)) {
    ++reports;
  }
  EXPECT_EQ(reports, 205u) << log;
}

// Issue 18: an allow reads Redis through the batching writer (mxguard_redis_batch_commands
// counts its HMGETs), bans after too many failures, and pipelined requests on one connection
// are answered in order, whichever answers wait on Redis and whichever do not.
TEST_F(AuthPolicyDaemonTest, AllowAnswersFromRedisAsynchronouslyAndInOrder) {
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  EXPECT_EQ(policy_status(c.post("/?command=allow", allow("192.0.2.40", "carol"), kKey).body), 0);
  for (int i = 0; i < 5; ++i) {
    c.post("/?command=report", report("192.0.2.40", "u" + std::to_string(i), false), kKey);
  }
  auto r = c.post("/?command=allow", allow("192.0.2.40", "carol"), kKey);
  EXPECT_EQ(r.body, R"({"msg":"Too many failed logins, try again later","status":-1})");
  EXPECT_TRUE(r.keep_alive);
  auto answers = pipelined(
      port_, {post_text("/?command=allow", allow("192.0.2.40", "a")),  // Redis: blocked
              post_text("/?command=allow", allow("127.0.0.1", "b")),   // allow-networks
              post_text("/?command=allow", "not json"),                // 400 at once
              post_text("/?command=allow", allow("192.0.2.41", "c")),  // Redis: under limits
              post_text("/?command=report", report("192.0.2.41", "c", false))});
  ASSERT_EQ(answers.size(), 5u) << daemon.log();
  EXPECT_EQ(answers[0].body, R"({"msg":"Too many failed logins, try again later","status":-1})");
  EXPECT_EQ(answers[1].body, R"({"msg":"","status":0})");
  EXPECT_EQ(answers[2].status, 400);
  EXPECT_EQ(answers[3].body, R"({"msg":"","status":0})");
  EXPECT_EQ(answers[4].body, R"({"msg":"","status":0})");
  for (const auto& a : answers) EXPECT_TRUE(a.keep_alive);
  std::string log = daemon.log();
  EXPECT_NE(log.find("Scarol: command=allow result=reject status=-1 remote=192.0.2.40 "
                     "login=carol protocol=imap success=- reason=\"ip blocked for 3600s\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("Sb: command=allow result=allowlisted status=0"), std::string::npos) << log;
  EXPECT_NE(log.find("Sc: command=allow result=allow status=0"), std::string::npos) << log;
  std::string metrics = http_get_metrics(metrics_port_);
  EXPECT_NE(
      metrics.find(R"(mxguard_authpolicy_decisions_total{command="allow",result="reject"} 2)"),
      std::string::npos)
      << metrics;
  // Four allows read Redis, four subjects each (password pair, address, network, login): 16
  // HMGETs, all through the batching writer.
  EXPECT_NE(metrics.find("mxguard_redis_batch_commands_sum 16"), std::string::npos) << metrics;
}

// Issue 18: with Redis stalled (SIGSTOP), more allows than server threads wait on it at once;
// meanwhile the server still answers other connections' requests at once (no thread is held),
// and every allow fails open once its Redis round trip timed out (or the breaker tripped),
// answered in order with what follows it on its connection.
TEST_F(AuthPolicyDaemonTest, StalledRedisHoldsNoThreadAndAllowsFailOpen) {
  write_config(
      "threads = 2\nmax-connections = 64\nredis-timeout = 2s\nredis-connect-timeout = 2s\n");
  Process daemon = start();
  {
    HttpClient warm("127.0.0.1", port_);
    ASSERT_EQ(policy_status(warm.post("/?command=allow", allow("192.0.2.1", "w"), kKey).body), 0);
  }
  redis_.pause();
  constexpr int kAllows = 8;  // four times the server threads
  std::atomic<int> done{0};
  std::vector<std::thread> clients;
  std::vector<HttpResponse> answers(kAllows);
  std::vector<std::chrono::milliseconds> took(kAllows);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kAllows; ++i) {
    clients.emplace_back([&, i] {
      HttpClient c("127.0.0.1", port_);
      answers[i] =
          c.post("/?command=allow",
                 allow("198.51.100." + std::to_string(i + 1), "s" + std::to_string(i)), kKey);
      took[i] = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      ++done;
    });
  }
  std::vector<HttpResponse> in_order;
  std::thread pipelining([&] {
    in_order = pipelined(port_, {post_text("/?command=allow", allow("203.0.113.9", "p")),  // stalls
                                 post_text("/?command=allow", allow("127.0.0.1", "q")),
                                 post_text("/?command=delete", "{}")});
  });
  std::this_thread::sleep_for(300ms);  // every allow is waiting on Redis now
  auto side = std::chrono::steady_clock::now();
  HttpClient other("127.0.0.1", port_);
  auto allowlisted = other.post("/?command=allow", allow("127.0.0.1", "local"), kKey);
  auto unauthorized = other.post("/?command=allow", allow("192.0.2.1", "x"));
  auto side_took = std::chrono::steady_clock::now() - side;
  int done_meanwhile = done.load();
  for (auto& t : clients) t.join();
  pipelining.join();
  redis_.resume();

  EXPECT_EQ(allowlisted.body, R"({"msg":"","status":0})");
  EXPECT_EQ(unauthorized.status, 401);
  EXPECT_LT(side_took, 1000ms) << "a stalled allow held a server thread";
  EXPECT_EQ(done_meanwhile, 0) << "Redis was not stalled while the other requests were answered";
  for (int i = 0; i < kAllows; ++i) {
    EXPECT_EQ(answers[i].status, 200) << i << daemon.log();
    EXPECT_EQ(answers[i].body, R"({"msg":"","status":0})") << i;
    EXPECT_TRUE(answers[i].keep_alive) << i;
    // Each Redis round trip ends within the 2 s timeout, and the first round trips the breaker
    // (3 timeouts; the daemon runs at least that many writers), after which calls fail at once.
    // A call a writer took from the queue just before the breaker tripped waits one more round
    // (seen: 2 of 9 at 4.05 s), as a request did that got a thread after the first round of
    // blocking calls. Plus slack for a loaded machine.
    EXPECT_LT(took[i], 5500ms) << i;
  }
  ASSERT_EQ(in_order.size(), 3u) << daemon.log();
  EXPECT_EQ(in_order[0].body, R"({"msg":"","status":0})");
  EXPECT_EQ(in_order[1].body, R"({"msg":"","status":0})");
  EXPECT_EQ(in_order[2].status, 400);
  std::string log = daemon.log();
  EXPECT_EQ(count_of(log, ": Redis unavailable, login allowed"), kAllows + 1) << log;
  EXPECT_NE(log.find("Sp: command=allow result=store-error status=0"), std::string::npos) << log;
  std::string metrics = http_get_metrics(metrics_port_);
  EXPECT_NE(metrics.find("mxguard_authpolicy_store_errors_total " + std::to_string(kAllows + 1)),
            std::string::npos)
      << metrics;
  // Redis is back: decisions read it again (once the pool's probe saw it answer).
  HttpClient after("127.0.0.1", port_);
  std::string result;
  for (int i = 0; i < 100; ++i) {
    after.post("/?command=allow", allow("192.0.2.99", "back"), kKey);
    if (daemon.log().find("Sback: command=allow result=allow status=0") != std::string::npos) {
      result = "allow";
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(result, "allow") << daemon.log();
}

// An allow waiting on a stalled Redis at SIGTERM is answered (fail-open) before the exit.
TEST_F(AuthPolicyDaemonTest, SigtermAnswersAnAllowWaitingOnRedis) {
  write_config("redis-timeout = 1s\nredis-connect-timeout = 1s\n");
  Process daemon = start();
  HttpClient c("127.0.0.1", port_);
  ASSERT_EQ(policy_status(c.post("/?command=allow", allow("192.0.2.1", "w"), kKey).body), 0);
  redis_.pause();
  HttpResponse answer;
  std::thread waiting([&] { answer = c.post("/?command=allow", allow("192.0.2.2", "t"), kKey); });
  std::this_thread::sleep_for(300ms);
  ::kill(daemon.pid(), SIGTERM);
  waiting.join();
  redis_.resume();
  EXPECT_EQ(answer.body, R"({"msg":"","status":0})") << daemon.log();
  EXPECT_EQ(daemon.wait_exit(10s), 0) << daemon.log();
  EXPECT_NE(daemon.log().find("St: command=allow result=store-error"), std::string::npos)
      << daemon.log();
}

TEST_F(AuthPolicyDaemonTest, BanCommand) {
  std::string out;
  EXPECT_EQ(ban({"list"}, &out), 0) << out;
  EXPECT_EQ(out, "");
  EXPECT_EQ(ban({"add", "ip", "198.51.100.7", "--duration", "10m"}, &out), 0) << out;
  EXPECT_EQ(ban({"add", "net", "203.0.113.77"}, &out), 0) << out;
  EXPECT_EQ(ban({"add", "login", "Mallory"}, &out), 0) << out;
  EXPECT_EQ(ban({"list"}, &out), 0) << out;
  EXPECT_NE(out.find("ip 198.51.100.7 600s\n"), std::string::npos) << out;
  EXPECT_NE(out.find("net 203.0.113.0/24 3600s\n"), std::string::npos) << out;
  EXPECT_NE(out.find("login mallory 3600s\n"), std::string::npos) << out;
  {
    Process daemon = start();
    HttpClient c("127.0.0.1", port_);
    EXPECT_EQ(policy_status(c.post("/?command=allow", allow("198.51.100.7", "a"), kKey).body), -1);
    EXPECT_EQ(policy_status(c.post("/?command=allow", allow("203.0.113.1", "a"), kKey).body), -1);
    // An administrator's login block is honoured even though login-limits (automatic login
    // blocks) is empty.
    EXPECT_EQ(policy_status(c.post("/?command=allow", allow("192.0.2.1", "MALLORY"), kKey).body),
              -1);
    EXPECT_EQ(ban({"del", "ip", "198.51.100.7"}, &out), 0) << out;
    EXPECT_EQ(policy_status(c.post("/?command=allow", allow("198.51.100.7", "a"), kKey).body), 0);
  }
  EXPECT_EQ(ban({"del", "ip", "198.51.100.7"}, &out), 1) << out;
  EXPECT_EQ(ban({"add", "ip", "not-an-ip"}, &out), 64) << out;
  EXPECT_EQ(ban({"frobnicate"}, &out), 64) << out;
  EXPECT_EQ(ban({"flush"}, &out), 0) << out;
  EXPECT_EQ(out, "lifted 2 block(s)\n");
  EXPECT_EQ(ban({"list"}, &out), 0);
  EXPECT_EQ(out, "");
  redis_.stop();
  EXPECT_EQ(ban({"list"}, &out), 69) << out;
}

}  // namespace
}  // namespace mxguard::testing
