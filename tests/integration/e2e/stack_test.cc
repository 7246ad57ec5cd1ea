// The whole suite end to end (tests/fixtures/stack.h: policyd with SPF and greylisting, then
// mxguard-dkim, mxguard-dmarc, mxguard-av behind a private Postfix, with real DNS, Redis and
// clamd on loopback): the demo's scenarios with assertions on SMTP replies, delivered headers
// and the daemons' log lines; then the failure cases — Redis stopped mid-run (greylisting
// fails open, mail keeps flowing), clamd stopped (4xx, then delivery after the restart:
// nothing lost), a milter killed with SIGKILL (Postfix's milter_default_action = tempfail,
// then recovery once it is back), reloads with changed tables while mail is flowing, and a
// 20 MB message through the whole chain.
#include "tests/fixtures/stack.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string crlf_message(const std::vector<std::string>& headers, const std::string& body) {
  std::string m;
  for (const auto& h : headers) m += h + "\r\n";
  return m + "\r\n" + body;
}

class StackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    StackOptions o;
    o.greylist_delay = 2s;
    stack_ = std::make_unique<Stack>(o);
  }
  void TearDown() override {
    if (HasFailure() && stack_) {
      for (const auto& d : Stack::daemons()) {
        std::cerr << "--- mxguard-" << d << " log:\n" << stack_->log(d);
      }
      std::cerr << "--- Postfix maillog:\n" << stack_->postfix().maillog();
    }
  }

  // The partner's mail from 127.0.0.2: signed by its key, SPF-authorised.
  SwaksOptions partner(const std::string& subject, const std::string& body = "Hello.\r\n") {
    SwaksOptions m;
    m.local_interface = "127.0.0.2";
    m.from = "news@partner.test";
    m.to = {"carol@mxguard.test"};
    m.data = stack_->sign_as_partner(
        crlf_message({"From: Partner News <news@partner.test>", "To: carol@mxguard.test",
                      "Subject: " + subject, "Date: Sun, 22 Nov 2026 10:00:00 +0000",
                      "Message-ID: <" + std::to_string(++counter_) + "@partner.test>"},
                     body));
    return m;
  }

  // Sends once (greylisted), waits out the delay, sends again: the triplet then passes.
  void pass_greylist() {
    auto m = partner("greylist opener");
    auto r = stack_->postfix().send(m);
    ASSERT_EQ(r.rcpt_code, 450) << r.transcript;
    std::this_thread::sleep_for(3s);
    r = stack_->postfix().send(m);
    ASSERT_EQ(r.data_code, 250) << r.transcript;
  }

  std::optional<DeliveredMessage> delivered_with(const std::string& needle,
                                                 std::chrono::seconds timeout = 10s) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      for (auto& m : stack_->postfix().delivered()) {
        if (m.raw.find(needle) != std::string::npos) return m;
      }
      std::this_thread::sleep_for(100ms);
    }
    return std::nullopt;
  }

  std::size_t count_delivered(const std::string& needle) {
    std::size_t n = 0;
    for (auto& m : stack_->postfix().delivered()) n += m.raw.find(needle) != std::string::npos;
    return n;
  }

  int counter_ = 0;
  std::unique_ptr<Stack> stack_;
};

TEST_F(StackTest, DemoScenarios) {
  PostfixInstance& pf = stack_->postfix();
  // Local submission: signed, and python3-dkim verifies it.
  SwaksOptions local;
  local.from = "alice@mxguard.test";
  local.to = {"bob@example.net"};
  local.headers = {"From: Alice <alice@mxguard.test>", "Subject: e2e local"};
  auto r = pf.send(local);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("e2e local");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->header("DKIM-Signature").size(), 1u) << d->headers();
  auto [rc, out] = stack_->verify_dkim(d->raw);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(stack_->log("dkim"), HasSubstr(r.queue_id + ": mode=sign action=signed"));

  // A new partner: greylisted, then accepted with SPF, DKIM and DMARC in one A-R header.
  auto m = partner("e2e newsletter");
  r = pf.send(m);
  EXPECT_EQ(r.rcpt_code, 450) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("Greylisted"));
  EXPECT_THAT(stack_->log("policyd"),
              HasSubstr("NOQUEUE: check=greylist result=greylist action=\"DEFER_IF_PERMIT"));
  std::this_thread::sleep_for(3s);
  r = pf.send(m);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  d = delivered_with("e2e newsletter");
  ASSERT_TRUE(d);
  auto ar = d->header("Authentication-Results");
  ASSERT_EQ(ar.size(), 1u) << d->headers();
  EXPECT_THAT(ar[0], HasSubstr("dkim=pass header.d=partner.test"));
  EXPECT_THAT(ar[0], HasSubstr("spf=pass smtp.mailfrom=news@partner.test"));
  EXPECT_THAT(ar[0], HasSubstr("dmarc=pass (p=reject dis=none) header.from=partner.test"));
  EXPECT_TRUE(d->first_header("X-Greylist")) << d->headers();
  EXPECT_THAT(d->first_header("Received-SPF").value_or(""), HasSubstr("pass"));
  EXPECT_THAT(d->first_header("X-Virus-Status").value_or(""), HasSubstr("clean"));
  EXPECT_THAT(stack_->log("dmarc"), HasSubstr(r.queue_id + ": dmarc=pass action=accept"));
  EXPECT_THAT(stack_->log("av"), HasSubstr(r.queue_id + ": verdict=clean action=accept"));

  // SPF fail at RCPT.
  SwaksOptions spoof = m;
  spoof.local_interface = "127.0.0.3";
  r = pf.send(spoof);
  EXPECT_EQ(r.rcpt_code, 550) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("5.7.23"));
  EXPECT_THAT(stack_->log("policyd"), HasSubstr("check=spf result=reject action=\"550 5.7.23"));

  // DMARC forgery after DATA (the triplet has passed greylisting).
  SwaksOptions forged = m;
  forged.data = crlf_message({"From: CEO <ceo@bank.test>", "Subject: e2e forged"}, "Pay.\r\n");
  r = pf.send(forged);
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("bank.test"));
  EXPECT_THAT(stack_->log("dmarc"), HasSubstr("dmarc=fail action=reject from=bank.test"));

  // EICAR as a base64 attachment.
  SwaksOptions virus = m;
  virus.data.clear();
  virus.headers = {"From: Partner News <news@partner.test>", "Subject: e2e eicar"};
  write_file(stack_->directory() / "eicar.com", eicar());
  virus.extra_args = {"--attach-type", "application/octet-stream",
                      "--attach-name", "eicar.com",
                      "--attach",      "@" + (stack_->directory() / "eicar.com").string()};
  r = pf.send(virus);
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr(kEicarSignature));
  EXPECT_THAT(stack_->log("av"),
              HasSubstr("verdict=infected action=reject virus=" + kEicarSignature));
  EXPECT_EQ(count_delivered("e2e eicar"), 0u);
  EXPECT_EQ(count_delivered("e2e forged"), 0u);
}

TEST_F(StackTest, RedisStoppedMidRunGreylistingFailsOpenAndMailFlows) {
  stack_->redis().stop();
  // A never-seen triplet is not greylisted while Redis is away (fail open).
  auto m = partner("e2e redis down");
  auto r = stack_->postfix().send(m);
  EXPECT_EQ(r.data_code, 250) << r.transcript;
  EXPECT_TRUE(delivered_with("e2e redis down"));
  EXPECT_THAT(stack_->log("policyd"), HasSubstr("store error"));
  stack_->redis().start();
  // Greylisting is back: a new sender is deferred again.
  std::this_thread::sleep_for(1s);
  SwaksOptions other = partner("e2e redis back");
  other.from = "sales@partner.test";
  r = stack_->postfix().send(other);
  EXPECT_EQ(r.rcpt_code, 450) << r.transcript;
}

TEST_F(StackTest, ClamdStoppedDefersThenDeliversOnce) {
  pass_greylist();
  stack_->clamd()->stop();
  auto m = partner("e2e clamd down");
  auto r = stack_->postfix().send(m);
  EXPECT_EQ(r.data_code, 451) << r.transcript;
  EXPECT_EQ(count_delivered("e2e clamd down"), 0u);
  stack_->clamd()->start();
  // The client retries (as any MTA would): delivered once.
  std::optional<SwaksResult> ok;
  for (int i = 0; i < 20 && !ok; ++i) {
    r = stack_->postfix().send(m);
    if (r.data_code == 250)
      ok = r;
    else
      std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(ok) << r.transcript;
  ASSERT_TRUE(delivered_with("e2e clamd down"));
  EXPECT_EQ(count_delivered("e2e clamd down"), 1u);
}

TEST_F(StackTest, KilledMilterMeansTempfailThenRecovery) {
  pass_greylist();
  stack_->kill("dmarc");
  auto m = partner("e2e dmarc killed");
  auto r = stack_->postfix().send(m);
  // milter_default_action = tempfail: Postfix cannot reach the milter and answers 4xx (at
  // MAIL FROM, when it opens the milter connection for the session).
  int code = r.mail_code != 250 ? r.mail_code : r.rcpt_code != 250 ? r.rcpt_code : r.data_code;
  EXPECT_EQ(code / 100, 4) << r.transcript;
  EXPECT_EQ(count_delivered("e2e dmarc killed"), 0u);
  stack_->start("dmarc");
  std::optional<SwaksResult> ok;
  for (int i = 0; i < 20 && !ok; ++i) {
    r = stack_->postfix().send(m);
    if (r.data_code == 250)
      ok = r;
    else
      std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(ok) << r.transcript;
  auto d = delivered_with("e2e dmarc killed");
  ASSERT_TRUE(d);
  EXPECT_THAT(d->header("Authentication-Results").at(0), HasSubstr("dmarc=pass"));
}

TEST_F(StackTest, ReloadsWithChangedTablesWhileMailFlows) {
  // Local mail flows continuously while every daemon reloads.
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed{0};
  std::string last_failure;
  std::thread flow([&] {
    while (!stop) {
      SwaksOptions local;
      local.from = "alice@mxguard.test";
      local.to = {"bob@example.net"};
      local.headers = {"From: alice@mxguard.test", "Subject: e2e flow " + std::to_string(sent)};
      auto r = stack_->postfix().send(local);
      if (r.data_code == 250)
        ++sent;
      else {
        ++failed;
        last_failure = r.transcript;
      }
    }
  });
  // A new sender is greylisted…
  SwaksOptions first = partner("e2e before reload");
  first.from = "info@partner.test";
  auto r = stack_->postfix().send(first);
  EXPECT_EQ(r.rcpt_code, 450) << r.transcript;
  // …until the client whitelist names 127.0.0.2 and policyd reloads (SIGHUP).
  write_file(stack_->directory() / "whitelist_clients", "127.0.0.2\n");
  stack_->reload("policyd");
  for (const auto& d : {"dkim", "dmarc", "av"}) stack_->reload(d);
  std::this_thread::sleep_for(1s);
  SwaksOptions second = partner("e2e after reload");
  second.from = "sales@partner.test";
  r = stack_->postfix().send(second);
  EXPECT_EQ(r.data_code, 250) << r.transcript;
  // Reloading twice more under load.
  for (int i = 0; i < 2; ++i) {
    for (const auto& d : Stack::daemons()) stack_->reload(d);
    std::this_thread::sleep_for(500ms);
  }
  stop = true;
  flow.join();
  EXPECT_GT(sent.load(), 3);
  EXPECT_EQ(failed.load(), 0) << last_failure;
  EXPECT_THAT(stack_->log("policyd"), HasSubstr("reload"));
}

TEST_F(StackTest, TwentyMegabyteMessageThroughTheWholeChain) {
  pass_greylist();
  std::string body;
  body.reserve(21 << 20);
  std::string line(76, 'x');
  while (body.size() < (20u << 20)) body += line + "\r\n";
  body += "the end\r\n";
  SwaksOptions m;
  m.local_interface = "127.0.0.2";
  m.from = "news@partner.test";
  m.to = {"carol@mxguard.test"};
  m.data = crlf_message({"From: news@partner.test", "To: carol@mxguard.test", "Subject: e2e 20MB"},
                        body);
  m.timeout_seconds = 120;
  auto r = stack_->postfix().send(m);
  ASSERT_EQ(r.data_code, 250) << r.transcript.substr(0, 2000);
  auto d = delivered_with("e2e 20MB", 60s);
  ASSERT_TRUE(d);
  EXPECT_GT(d->raw.size(), 20u << 20);
  EXPECT_THAT(d->first_header("X-Virus-Status").value_or(""), HasSubstr("clean"));
  EXPECT_THAT(d->header("Authentication-Results").at(0), HasSubstr("dmarc=pass"));
}

}  // namespace
}  // namespace mxguard::testing
