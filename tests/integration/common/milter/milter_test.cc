// Drives the libmilter wrapper with miltertest: callbacks in order, macros, header changes,
// replies, and the exception barrier turning an internal error into 451 4.3.0.
#include "common/milter/milter.h"

#include <gtest/gtest.h>
#include <libmilter/mfapi.h>

#include <thread>

#include "common/metrics/metrics.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"

namespace mxguard::common::milter {
namespace {

class TestSession : public Session {
 public:
  Status on_connect(Context&, const ConnectInfo& info) override {
    client_ = info.address;
    return Status::kContinue;
  }
  Status on_mail_from(Context&, const std::vector<std::string>& args) override {
    headers_ = 0;
    body_ = 0;
    sender_ = args.empty() ? "" : args[0];
    boom_ = reject_ = false;
    if (sender_ == "<mail-boom@example.com>") throw std::runtime_error("mail callback failure");
    return Status::kContinue;
  }
  Status on_header(Context&, std::string_view name, std::string_view) override {
    ++headers_;
    if (name == "X-Boom") boom_ = true;
    if (name == "X-Header-Boom") throw std::runtime_error("header callback failure");
    if (name == "X-Reject") reject_ = true;
    return Status::kContinue;
  }
  Status on_body(Context&, std::string_view chunk) override {
    body_ += chunk.size();
    return Status::kContinue;
  }
  Status on_eom(Context& c) override {
    if (boom_) throw std::runtime_error("simulated internal failure");
    if (reject_) {
      c.set_reply("550", "5.7.1", "Rejected by test, 100% sure");
      return Status::kReject;
    }
    c.add_header("X-Test-Seen", "client=" + client_ + " sender=" + sender_ +
                                    " headers=" + std::to_string(headers_) +
                                    " body=" + std::to_string(body_) + " qid=" + c.queue_id());
    c.delete_header("X-Remove-Me", 1);
    return Status::kAccept;
  }

 private:
  std::string client_, sender_;
  int headers_ = 0;
  std::size_t body_ = 0;
  bool boom_ = false, reject_ = false;
};

class MilterTest : public ::testing::Test {
 protected:
  // A unix socket, as mxguard-setup wires the milters (and the only kind on which we ask for
  // SMFIP_NR_HDR); tcp_milter_test.cc covers TCP.
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    MilterOptions o;
    o.name = "mxguard-test";
    o.listen = "unix:" + (*dir_ / "milter.sock").string();
    o.actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
    milter_ = new Milter(o, [] { return std::make_unique<TestSession>(); });
    milter_->open();
    thread_ = new std::thread([] { milter_->serve(); });
  }
  static void TearDownTestSuite() {
    milter_->stop();
    thread_->join();
    delete thread_;
    delete milter_;
    delete dir_;
  }
  static std::string socket() { return "unix:" + (*dir_ / "milter.sock").string(); }

  static testing::TempDir* dir_;
  static Milter* milter_;
  static std::thread* thread_;
};

testing::TempDir* MilterTest::dir_ = nullptr;
Milter* MilterTest::milter_ = nullptr;
std::thread* MilterTest::thread_ = nullptr;

const char* kPrologue = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client.example", "127.0.0.2") ~= nil then error("conninfo failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("conninfo reply") end
if mt.helo(conn, "client.example") ~= nil then error("helo failed") end
mt.macro(conn, SMFIC_MAIL, "i", "4Xk2Qz1abc")
if mt.mailfrom(conn, "<sender@example.com>") ~= nil then error("mailfrom failed") end
if mt.rcptto(conn, "<rcpt@example.net>") ~= nil then error("rcptto failed") end
)";

TEST_F(MilterTest, CallbacksSeeTheMessageAndAddHeaders) {
  std::string script = std::string(kPrologue) + R"(
mt.header(conn, "Subject", "hello")
mt.header(conn, "X-Remove-Me", "yes")
mt.eoh(conn)
mt.bodystring(conn, "0123456789\r\n")
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_ACCEPT then error("expected accept") end
local v = mt.getheader(conn, "X-Test-Seen", 0)
mt.echo("SEEN=" .. tostring(v))
if not mt.eom_check(conn, MT_HDRDELETE, "X-Remove-Me") then error("header not deleted") end
mt.disconnect(conn)
)";
  auto r = testing::run_miltertest(script, socket());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SEEN=client=127.0.0.2 sender=<sender@example.com> headers=2 body=12 "
                          "qid=4Xk2Qz1abc"),
            std::string::npos)
      << r.output;
}

TEST_F(MilterTest, ExceptionBecomesTempfailAndIsCounted) {
  auto& counter = metrics::Registry::global().counter(
      "mxguard_milter_internal_errors_total", "Milter callbacks that failed with an internal error",
      {{"stage", "eom"}});
  auto before = counter.value();
  std::string script = std::string(kPrologue) + R"(
mt.header(conn, "X-Boom", "1")
mt.eoh(conn)
mt.bodystring(conn, "x\r\n")
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("expected a reply code, got " .. tostring(mt.getreply(conn))) end
mt.disconnect(conn)
)";
  ::testing::internal::CaptureStderr();
  auto r = testing::run_miltertest(script, socket());
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counter.value(), before + 1);
  EXPECT_NE(log.find("4Xk2Qz1abc: stage=eom action=tempfail reason=\"simulated internal failure\""),
            std::string::npos)
      << log;
}

TEST_F(MilterTest, HeaderCallbackFailureIsAnsweredAtTheNextStep) {
  // With SMFIP_NR_HDR (and NR_EOH, NR_BODY) negotiated neither the header nor the end of
  // headers nor the body gets an answer; the failure must still end in the configured
  // tempfail at the next answered step (end of message), never in an accept.
  std::string script = std::string(kPrologue) + R"(
mt.header(conn, "X-Header-Boom", "1")
mt.header(conn, "Subject", "after the failure")
mt.eoh(conn)
mt.bodystring(conn, "body\r\n")
mt.eom(conn)
local r = mt.getreply(conn)
mt.echo("EOM=" .. tostring(r))
if r ~= SMFIR_REPLYCODE and r ~= SMFIR_TEMPFAIL then error("expected tempfail, got " .. tostring(r)) end
mt.disconnect(conn)
)";
  ::testing::internal::CaptureStderr();
  auto r = testing::run_miltertest(script, socket());
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(r.exit_code, 0) << r.output << log;
  EXPECT_NE(log.find("stage=header action=tempfail reason=\"header callback failure\""),
            std::string::npos)
      << log;
}

TEST_F(MilterTest, MailFromFailureIsAnsweredAtRcpt) {
  // SMFIP_NR_MAIL: MAIL FROM gets no answer; its failure answers RCPT with the configured
  // tempfail, never an accept.
  std::string script = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client.example", "127.0.0.2") ~= nil then error("conninfo failed") end
mt.macro(conn, SMFIC_MAIL, "i", "4Xk2Qz1abd")
if mt.mailfrom(conn, "<mail-boom@example.com>") ~= nil then error("mailfrom failed") end
if mt.rcptto(conn, "<rcpt@example.net>") ~= nil then error("rcptto failed") end
local r = mt.getreply(conn)
mt.echo("RCPT=" .. tostring(r))
if r ~= SMFIR_REPLYCODE and r ~= SMFIR_TEMPFAIL then error("expected tempfail, got " .. tostring(r)) end
mt.disconnect(conn)
)";
  ::testing::internal::CaptureStderr();
  auto r = testing::run_miltertest(script, socket());
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(r.exit_code, 0) << r.output << log;
  EXPECT_NE(log.find("stage=mail action=tempfail reason=\"mail callback failure\""),
            std::string::npos)
      << log;
}

TEST_F(MilterTest, RejectWithCustomReply) {
  std::string script = std::string(kPrologue) + R"(
mt.header(conn, "X-Reject", "1")
mt.eoh(conn)
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("expected a reply code") end
mt.disconnect(conn)
)";
  auto r = testing::run_miltertest(script, socket());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(MilterTest, SeveralConnectionsAtOnce) {
  std::string script = std::string(kPrologue) + R"(
mt.header(conn, "Subject", "x")
mt.eoh(conn)
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_ACCEPT then error("expected accept") end
mt.disconnect(conn)
)";
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      if (testing::run_miltertest(script, socket()).exit_code == 0) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
}

}  // namespace
}  // namespace mxguard::common::milter
