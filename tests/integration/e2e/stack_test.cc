// The whole suite end to end (tests/fixtures/stack.h: policyd with SPF and greylisting, then
// mxguard-dkim, mxguard-dmarc, mxguard-av behind a private Postfix, with real DNS, Redis and
// clamd on loopback): the demo's scenarios with assertions on SMTP replies, delivered headers
// and the daemons' log lines; then the failure cases — Redis stopped mid-run (greylisting
// fails open, mail keeps flowing), clamd stopped (4xx, then delivery after the restart:
// nothing lost), a milter killed with SIGKILL (Postfix's milter_default_action = tempfail,
// then recovery once it is back), reloads with changed tables while mail is flowing, and a
// 20 MB message through the whole chain.
// Every test runs in both shapes (…/Separate: mxguard-dkim, mxguard-dmarc, mxguard-av as three
// milters; …/Combined: one mxguard-milter with filters = dkim, dmarc, av reading the same
// files) with the same assertions; where the shapes differ by design, each is asserted.
#include "tests/fixtures/stack.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <optional>
#include <thread>

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

enum class Shape { kSeparate, kCombined };

std::string shape_name(const ::testing::TestParamInfo<Shape>& info) {
  return info.param == Shape::kCombined ? "Combined" : "Separate";
}

// The Authentication-Results values written by us (authserv-id mx.mxguard.test).
std::vector<std::string> ours(const std::vector<std::string>& ar) {
  std::vector<std::string> out;
  for (const auto& v : ar) {
    if (v.starts_with("mx.mxguard.test;")) out.push_back(v);
  }
  return out;
}

std::string crlf_message(const std::vector<std::string>& headers, const std::string& body) {
  std::string m;
  for (const auto& h : headers) m += h + "\r\n";
  return m + "\r\n" + body;
}

class StackTest : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    StackOptions o;
    o.greylist_delay = 2s;
    o.combined = combined();
    stack_ = std::make_unique<Stack>(o);
  }
  void TearDown() override {
    if (HasFailure() && stack_) {
      for (const auto& d : stack_->daemons()) {
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

  // The first line of `daemon`'s log that contains `needle` (empty if none).
  std::string log_line(const std::string& daemon, const std::string& needle) {
    std::string log = stack_->log(daemon);
    auto p = log.find(needle);
    if (p == std::string::npos) return "";
    auto begin = log.rfind('\n', p);
    begin = begin == std::string::npos ? 0 : begin + 1;
    return log.substr(begin, log.find('\n', p) - begin);
  }

  std::size_t count_delivered(const std::string& needle) {
    std::size_t n = 0;
    for (auto& m : stack_->postfix().delivered()) n += m.raw.find(needle) != std::string::npos;
    return n;
  }

  static bool combined() { return GetParam() == Shape::kCombined; }

  int counter_ = 0;
  std::unique_ptr<Stack> stack_;
};

INSTANTIATE_TEST_SUITE_P(, StackTest, ::testing::Values(Shape::kSeparate, Shape::kCombined),
                         shape_name);

TEST_P(StackTest, DemoScenarios) {
  PostfixInstance& pf = stack_->postfix();
  // The shape is the one asked for: Postfix talks to three milters, or to one.
  std::string milters = pf.postconf("smtpd_milters");
  std::size_t sockets = 0;
  for (auto p = milters.find("inet:"); p != std::string::npos; p = milters.find("inet:", p + 1))
    ++sockets;
  EXPECT_EQ(sockets, combined() ? 1u : 3u) << milters;
  if (combined()) {
    EXPECT_THAT(stack_->log("milter"), HasSubstr("filters: dkim, dmarc, av"));
    EXPECT_FALSE(std::filesystem::exists(stack_->directory() / "mxguard-dkim.log"));
  }
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
  // Each header as written on the wire: one space after the colon, whichever leading-space
  // handling the filter negotiated alone or the chain negotiated for all.
  EXPECT_THAT("\r\n" + d->raw, HasSubstr("\r\nDKIM-Signature: v=1;")) << d->headers();
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
  // One header of ours in both shapes, with the same results: separate, mxguard-dkim's sealed
  // header that mxguard-dmarc rewrote with its own results added (the seal gone with it);
  // combined, the one header the chain writes from the filters' typed results.
  ASSERT_EQ(ar.size(), 1u) << d->headers();
  EXPECT_TRUE(ar[0].starts_with("mx.mxguard.test;")) << ar[0];
  EXPECT_THAT(ar[0], HasSubstr("dkim=pass header.d=partner.test"));
  EXPECT_THAT(ar[0], HasSubstr("spf=pass smtp.mailfrom=news@partner.test"));
  EXPECT_THAT(ar[0], HasSubstr("dmarc=pass (p=reject dis=none) header.from=partner.test"));
  EXPECT_THAT(ar[0], Not(HasSubstr("mxguard-seal")));
  EXPECT_TRUE(d->first_header("X-Greylist")) << d->headers();
  EXPECT_THAT(d->first_header("Received-SPF").value_or(""), HasSubstr("pass"));
  EXPECT_THAT(d->first_header("X-Virus-Status").value_or(""), HasSubstr("clean"));
  // (The order differs: separate, av's headers go on top of the A-R header dkim inserted;
  // combined, the chain writes its A-R header last, on top of av's.)
  const std::string wire = "\r\n" + d->raw;
  EXPECT_THAT(wire, HasSubstr("\r\nAuthentication-Results: mx.mxguard.test;")) << d->headers();
  EXPECT_THAT(wire, HasSubstr("\r\nX-Virus-Status: clean\r\n")) << d->headers();
  EXPECT_THAT(wire, HasSubstr("\r\nX-Virus-Scanned: mxguard-av ")) << d->headers();
  EXPECT_THAT(stack_->log("dmarc"), HasSubstr(r.queue_id + ": dmarc=pass action=accept"));
  EXPECT_THAT(stack_->log("av"), HasSubstr(r.queue_id + ": verdict=clean action=accept"));

  // Forged A-R headers claiming our authserv-id go, the partner's own (another authserv-id)
  // stays. The forged one is A-R number 1 and the partner's number 2: a second deletion of
  // index 1 — by a filter that did not know the first had deleted it — would remove the
  // partner's header instead.
  SwaksOptions faked = m;
  faked.data = stack_->sign_as_partner(crlf_message(
      {"Authentication-Results: mx.mxguard.test; dkim=pass header.d=bank.test; "
       "dmarc=pass header.from=bank.test",
       "Authentication-Results: mx.partner.test; spf=pass smtp.mailfrom=partner.test",
       "From: Partner News <news@partner.test>", "To: carol@mxguard.test", "Subject: e2e fake ar",
       "Date: Sun, 22 Nov 2026 10:00:00 +0000", "Message-ID: <forged-ar@partner.test>"},
      "Hello.\r\n"));
  r = pf.send(faked);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  d = delivered_with("e2e fake ar");
  ASSERT_TRUE(d);
  ar = d->header("Authentication-Results");
  EXPECT_EQ(ar.size(), 2u) << d->headers();
  ASSERT_EQ(ours(ar).size(), 1u) << d->headers();
  EXPECT_THAT(ours(ar)[0], HasSubstr("dkim=pass header.d=partner.test"));
  EXPECT_THAT(ours(ar)[0], HasSubstr("dmarc=pass"));
  EXPECT_THAT(d->headers(), Not(HasSubstr("bank.test")));
  EXPECT_THAT(d->headers(), HasSubstr("mx.partner.test; spf=pass smtp.mailfrom=partner.test"));
  // Deleted once, by the first filter that judged it (dkim); dmarc found none left.
  EXPECT_THAT(log_line("dkim", r.queue_id + ": mode=verify"), HasSubstr("forged_ar_removed=1"));
  EXPECT_THAT(log_line("dmarc", r.queue_id + ": dmarc=pass"), HasSubstr("forged_ar_removed=0"));

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

TEST_P(StackTest, RedisStoppedMidRunGreylistingFailsOpenAndMailFlows) {
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

TEST_P(StackTest, ClamdStoppedDefersThenDeliversOnce) {
  pass_greylist();
  stack_->clamd()->stop();
  auto m = partner("e2e clamd down");
  auto r = stack_->postfix().send(m);
  // The av filter's own outcome (on-error = tempfail), in both shapes.
  EXPECT_EQ(r.data_code, 451) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("4.3.0 Virus scanner unavailable"));
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

TEST_P(StackTest, KilledMilterMeansTempfailThenRecovery) {
  pass_greylist();
  // Separate: one of the three milters; combined: mxguard-milter, all three filters at once.
  const std::string victim = combined() ? "milter" : "dmarc";
  stack_->kill(victim);
  auto m = partner("e2e dmarc killed");
  auto r = stack_->postfix().send(m);
  // default_action=tempfail: Postfix cannot reach the milter and answers 451 4.7.1 (at
  // MAIL FROM, when it opens the milter connection for the session), never accepts.
  int code = r.mail_code != 250 ? r.mail_code : r.rcpt_code != 250 ? r.rcpt_code : r.data_code;
  EXPECT_EQ(code, 451) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("451 4.7.1"));
  EXPECT_NE(r.exit_code, 0) << r.transcript;
  EXPECT_EQ(count_delivered("e2e dmarc killed"), 0u);
  stack_->start(victim);
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

TEST_P(StackTest, ReloadsWithChangedTablesWhileMailFlows) {
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
  // …and the av filter's own file changes too: a reload re-reads it, in either shape.
  // (No ASSERT while the flow thread runs: it must be joined.)
  std::string av = read_file(stack_->config_path("av"));
  auto host = av.find("header-host = mx.mxguard.test");
  EXPECT_NE(host, std::string::npos) << av;
  if (host != std::string::npos) av.replace(host, 29, "header-host = reloaded.mxguard.test");
  write_file(stack_->config_path("av"), av);
  for (const auto& d : stack_->daemons()) stack_->reload(d);
  std::this_thread::sleep_for(1s);
  SwaksOptions second = partner("e2e after reload");
  second.from = "sales@partner.test";
  r = stack_->postfix().send(second);
  EXPECT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("e2e after reload");
  EXPECT_TRUE(d);
  if (d) {
    EXPECT_THAT(d->first_header("X-Virus-Scanned").value_or(""),
                HasSubstr("on reloaded.mxguard.test"));
  }
  // Reloading twice more under load.
  for (int i = 0; i < 2; ++i) {
    for (const auto& d : stack_->daemons()) stack_->reload(d);
    std::this_thread::sleep_for(500ms);
  }
  stop = true;
  flow.join();
  EXPECT_GT(sent.load(), 3);
  EXPECT_EQ(failed.load(), 0) << last_failure;
  for (const auto& name : stack_->daemons()) {
    EXPECT_THAT(stack_->log(name), HasSubstr("reload: done")) << name;
    EXPECT_THAT(stack_->log(name), Not(HasSubstr("reload failed"))) << name;
  }
}

TEST_P(StackTest, TwentyMegabyteMessageThroughTheWholeChain) {
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
