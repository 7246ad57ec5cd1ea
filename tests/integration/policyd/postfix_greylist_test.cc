// End-to-end greylisting: a private Postfix (tests/fixtures/postfix.h) asks the real
// mxguard-policyd binary (started as in daemon_test.cc, with a private Redis) at RCPT time.
// Checks what a mail administrator sees on the wire and in the logs: a first attempt from an
// external client is deferred with 450, a retry after the delay is delivered with X-Greylist,
// trusted clients pass, a Redis outage fails open, a dead policyd defers with Postfix's 451 4.3.5
// (mail is never lost), and one decision line per RCPT. Must never touch the system Postfix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-policyd";
// Two seconds keeps each test fast and is still long enough that an immediate retry (same
// second or the next) is "early".
constexpr auto kDelay = seconds(2);

// 127.0.0.2 is "external": only 127.0.0.1 is trusted by policyd (and is Postfix's mynetworks,
// which does not matter here since the policy service is the only recipient restriction).
const std::string kExternal = "127.0.0.2";

class PostfixGreylistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    policy_port_ = free_tcp_port();
    write_file(dir_ / "clients", "# empty: nothing but the trusted network skips greylisting\n");
    write_file(dir_ / "recipients", "# empty\n");
    write_file(dir_ / "policyd.conf",
               "listen = inet:127.0.0.1:" + std::to_string(policy_port_) + "\n" +
                   "redis-url = " + redis_.url() + "\n" +
                   "trusted-networks = 127.0.0.1/32\n"
                   "greylist-delay = " +
                   std::to_string(kDelay.count()) +
                   "s\n"
                   "greylist-hostname = mx.mxguard.test\n"
                   "greylist-whitelist-clients = " +
                   (dir_ / "clients").string() + "\n" +
                   "greylist-whitelist-recipients = " + (dir_ / "recipients").string() + "\n");
    start_policyd();
    PostfixInstance::Options o;
    o.policy_service = "inet:127.0.0.1:" + std::to_string(policy_port_);
    postfix_ = std::make_unique<PostfixInstance>(o);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- mxguard-policyd log:\n" << read_file(dir_ / "policyd.log");
      if (postfix_) std::cerr << "--- Postfix maillog:\n" << postfix_->maillog();
    }
  }

  void start_policyd() {
    // Appends to the same log file, so a restarted daemon's lines follow the killed one's.
    policyd_ = Process(
        {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "policyd.conf").string()},
        dir_ / "policyd.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", policy_port_, seconds(10)))
        << "mxguard-policyd did not start:\n"
        << policyd_.log();
  }

  SwaksResult send(const std::string& from, const std::vector<std::string>& to,
                   const std::string& client = kExternal) const {
    SwaksOptions m;
    m.from = from;
    m.to = to;
    m.local_interface = client;
    m.headers = {"Subject: " + from};
    m.body = "unique body for " + from;
    return postfix_->send(m);
  }

  // Messages the sink received from `from`, so scenarios do not depend on each other's mail.
  std::vector<DeliveredMessage> delivered_from(const std::string& from) const {
    std::vector<DeliveredMessage> out;
    for (auto& m : postfix_->delivered()) {
      if (m.sender == from) out.push_back(std::move(m));
    }
    return out;
  }

  bool wait_for_delivery_from(const std::string& from, std::size_t n, milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (delivered_from(from).size() >= n) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return delivered_from(from).size() >= n;
  }

  // policyd's decision lines (stderr: "mxguard-policyd[PID]: QUEUEID: check=…").
  std::vector<std::string> decision_lines(const std::string& needle) const {
    std::vector<std::string> out;
    std::istringstream in(read_file(dir_ / "policyd.log"));
    for (std::string line; std::getline(in, line);) {
      if (line.find(" check=") != std::string::npos && line.find(needle) != std::string::npos) {
        out.push_back(line);
      }
    }
    return out;
  }

  TempDir dir_;
  RedisServer redis_;
  int policy_port_ = 0;
  Process policyd_;
  std::unique_ptr<PostfixInstance> postfix_;
};

// (a) + (b): first attempt deferred at RCPT, an early retry deferred, a retry after the delay
// accepted and delivered with the X-Greylist header.
TEST_F(PostfixGreylistTest, FirstAttemptIsDeferredAndRetryAfterTheDelayIsDelivered) {
  const std::string from = "first-contact@sender.example";
  auto start = std::chrono::steady_clock::now();
  SwaksResult first = send(from, {"bob@rcpt.example"});
  EXPECT_EQ(first.rcpt_code, 450) << first.transcript;
  // 4.2.0, not Postfix's 4.7.1 for DEFER_IF_PERMIT: Postfix sends etrn_domain, and like
  // postgrey (its Exchange workaround) policyd then puts 4.2.0 in front of the text.
  EXPECT_THAT(first.transcript, HasSubstr("450 4.2.0 <bob@rcpt.example>: Recipient address "
                                          "rejected: Greylisted, please try again later"));
  EXPECT_EQ(first.data_code, 0) << first.transcript;

  SwaksResult early = send(from, {"bob@rcpt.example"});
  EXPECT_EQ(early.rcpt_code, 450) << early.transcript;

  std::this_thread::sleep_until(start + kDelay + milliseconds(300));
  SwaksResult retry = send(from, {"bob@rcpt.example"});
  EXPECT_EQ(retry.rcpt_code, 250) << retry.transcript;
  ASSERT_EQ(retry.data_code, 250) << retry.transcript;
  ASSERT_TRUE(wait_for_delivery_from(from, 1, seconds(10))) << postfix_->maillog();

  auto got = delivered_from(from);
  ASSERT_EQ(got.size(), 1u);  // the deferred attempts left nothing behind
  auto header = got[0].header("X-Greylist");
  ASSERT_EQ(header.size(), 1u) << got[0].headers();
  EXPECT_THAT(header[0],
              ::testing::MatchesRegex(
                  "delayed [23] seconds by mxguard-policyd-.* at mx\\.mxguard\\.test; .*"));
  EXPECT_EQ(got[0].recipients, std::vector<std::string>{"bob@rcpt.example"});
  EXPECT_EQ(postfix_->queue_size(), 0u);
}

// (c): the trusted network is never greylisted, however often it sends.
TEST_F(PostfixGreylistTest, TrustedClientIsNeverGreylisted) {
  const std::string from = "internal@sender.example";
  for (int i = 0; i < 3; ++i) {
    SwaksResult r = send(from, {"user" + std::to_string(i) + "@rcpt.example"}, "127.0.0.1");
    EXPECT_EQ(r.rcpt_code, 250) << r.transcript;
    EXPECT_EQ(r.data_code, 250) << r.transcript;
  }
  ASSERT_TRUE(wait_for_delivery_from(from, 3, seconds(10))) << postfix_->maillog();
  for (const auto& m : delivered_from(from)) {
    EXPECT_TRUE(m.header("X-Greylist").empty()) << m.headers();
  }
  EXPECT_EQ(decision_lines("result=trusted").size(), 3u);
  EXPECT_TRUE(decision_lines("sender=<" + from + "> ").size() == 3u);
  EXPECT_TRUE(decision_lines("result=greylist").empty());
}

// (d): with Redis down mail flows ungreylisted (fail open, the default); once Redis is back,
// new triplets are greylisted again.
TEST_F(PostfixGreylistTest, RedisOutageFailsOpenAndGreylistingResumesAfterwards) {
  SwaksResult before = send("before-outage@sender.example", {"bob@rcpt.example"});
  EXPECT_EQ(before.rcpt_code, 450) << before.transcript;

  redis_.stop();
  const std::string during = "during-outage@sender.example";
  SwaksResult r = send(during, {"bob@rcpt.example"});
  EXPECT_EQ(r.rcpt_code, 250) << r.transcript;
  EXPECT_EQ(r.data_code, 250) << r.transcript;
  ASSERT_TRUE(wait_for_delivery_from(during, 1, seconds(10))) << postfix_->maillog();
  EXPECT_TRUE(delivered_from(during)[0].header("X-Greylist").empty());
  EXPECT_FALSE(decision_lines("result=error action=DUNNO").empty());

  redis_.start();
  // The pool backs off (100 ms doubling to 5 s) after failures, so greylisting comes back
  // within a few seconds, not at once. Each attempt is a new triplet; the ones that still
  // slipped through are delivered, which is the point of failing open.
  int code = 0;
  auto deadline = std::chrono::steady_clock::now() + seconds(15);
  for (int i = 0; code != 450 && std::chrono::steady_clock::now() < deadline; ++i) {
    SwaksResult again =
        send("after-outage-" + std::to_string(i) + "@sender.example", {"bob@rcpt.example"});
    code = again.rcpt_code;
    if (code != 450) {
      EXPECT_EQ(code, 250) << again.transcript;
      std::this_thread::sleep_for(milliseconds(250));
    }
  }
  EXPECT_EQ(code, 450) << "greylisting did not resume after Redis came back";
}

// (e): a dead policy service defers (Postfix's default action 451 4.3.5), so the client keeps
// the mail; after a restart mail flows again and greylisting works.
TEST_F(PostfixGreylistTest, DeadPolicydDefersWith451AndMailFlowsAfterARestart) {
  SwaksResult warm = send("internal-warm@sender.example", {"bob@rcpt.example"}, "127.0.0.1");
  ASSERT_EQ(warm.data_code, 250) << warm.transcript;  // Postfix holds a policy connection now

  policyd_.stop(SIGKILL);
  for (const std::string& client : {kExternal, std::string("127.0.0.1")}) {
    const std::string from = "while-dead-" + client + "@sender.example";
    SwaksResult r = send(from, {"bob@rcpt.example"}, client);
    EXPECT_EQ(r.rcpt_code, 451) << r.transcript;
    EXPECT_THAT(r.transcript, HasSubstr("451 4.3.5 <bob@rcpt.example>: Recipient address "
                                        "rejected: Server configuration problem"));
    EXPECT_EQ(r.data_code, 0) << r.transcript;
  }
  EXPECT_EQ(postfix_->queue_size(), 0u);  // deferred at the door, nothing half-accepted
  EXPECT_TRUE(postfix_->wait_for_log(
      "problem talking to server 127.0.0.1:" + std::to_string(policy_port_), seconds(5)))
      << postfix_->maillog();

  start_policyd();
  SwaksResult trusted = send("internal-after@sender.example", {"bob@rcpt.example"}, "127.0.0.1");
  EXPECT_EQ(trusted.data_code, 250) << trusted.transcript;
  const std::string from = "after-restart@sender.example";
  auto start = std::chrono::steady_clock::now();
  SwaksResult external = send(from, {"bob@rcpt.example"});
  EXPECT_EQ(external.rcpt_code, 450) << external.transcript;
  std::this_thread::sleep_until(start + kDelay + milliseconds(300));
  SwaksResult retry = send(from, {"bob@rcpt.example"});
  EXPECT_EQ(retry.data_code, 250) << retry.transcript;
  EXPECT_TRUE(wait_for_delivery_from(from, 1, seconds(10))) << postfix_->maillog();
  EXPECT_TRUE(wait_for_delivery_from("internal-after@sender.example", 1, seconds(10)));
}

// (f): one decision line per RCPT, queue id first ("NOQUEUE" before Postfix opened a queue
// file), then check, result, action, client, sender and recipient.
TEST_F(PostfixGreylistTest, LogsOneDecisionLinePerRcptWithTheQueueId) {
  const std::string from = "log-format@sender.example";
  SwaksResult r = send(from, {"one@rcpt.example", "two@rcpt.example"});
  EXPECT_EQ(r.rcpt_codes, (std::vector<int>{450, 450})) << r.transcript;

  const std::regex greylisted(
      "mxguard-policyd\\[[0-9]+\\]: NOQUEUE: check=greylist result=greylist "
      "action=\"DEFER_IF_PERMIT 4\\.2\\.0 Greylisted, please try again later\" "
      "client=unknown\\[127\\.0\\.0\\.2\\] "
      "sender=<log-format@sender\\.example> recipient=<(one|two)@rcpt\\.example> "
      "helo=client\\.example\\.org spf=- reason=new age=0");
  auto lines = decision_lines("sender=<" + from + ">");
  ASSERT_EQ(lines.size(), 2u) << read_file(dir_ / "policyd.log");
  for (const auto& line : lines) EXPECT_TRUE(std::regex_match(line, greylisted)) << line;
  EXPECT_THAT(lines[0], HasSubstr("recipient=<one@rcpt.example>"));
  EXPECT_THAT(lines[1], HasSubstr("recipient=<two@rcpt.example>"));

  // Once a recipient is accepted Postfix opens the queue file (smtpd_delay_open_until_valid_rcpt),
  // so the second RCPT's request, and its log line, carry the message's queue id.
  const std::string trusted_from = "log-format-trusted@sender.example";
  SwaksResult t = send(trusted_from, {"one@rcpt.example", "two@rcpt.example"}, "127.0.0.1");
  ASSERT_EQ(t.data_code, 250) << t.transcript;
  ASSERT_FALSE(t.queue_id.empty()) << t.transcript;
  auto trusted = decision_lines("sender=<" + trusted_from + ">");
  ASSERT_EQ(trusted.size(), 2u) << read_file(dir_ / "policyd.log");
  const std::string tail =
      "check=skip result=trusted action=DUNNO client=unknown[127.0.0.1] sender=<" + trusted_from +
      "> recipient=<";
  EXPECT_THAT(trusted[0], HasSubstr("]: NOQUEUE: " + tail + "one@rcpt.example>"));
  EXPECT_THAT(trusted[1], HasSubstr("]: " + t.queue_id + ": " + tail + "two@rcpt.example>"));
  EXPECT_THAT(read_file(dir_ / "policyd.log"), Not(HasSubstr("error:")));
}

}  // namespace
}  // namespace mxguard::testing
