// common/milter on a TCP listener (its own process: libmilter allows one milter per process).
// On TCP the wrapper does not ask for SMFIP_NR_HDR: the MTA's unanswered header writes would
// meet Nagle and our delayed ACK (~40 ms a message; tests/bench/dkim_compare.sh's inet rows
// show it). So each header is answered at once, a failing one with the tempfail.
#include <gtest/gtest.h>
#include <libmilter/mfapi.h>

#include <stdexcept>
#include <thread>

#include "common/milter/milter.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"

namespace mxguard::common::milter {
namespace {

class HeaderSession : public Session {
 public:
  Status on_header(Context&, std::string_view name, std::string_view) override {
    if (name == "X-Header-Boom") throw std::runtime_error("header callback failure");
    return Status::kContinue;
  }
  Status on_eom(Context& c) override {
    c.add_header("X-Test-Seen", "yes");
    return Status::kAccept;
  }
};

class TcpMilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    port_ = testing::free_tcp_port();
    MilterOptions o;
    o.name = "mxguard-tcp-test";
    o.listen = "inet:127.0.0.1:" + std::to_string(port_);
    o.actions = SMFIF_ADDHDRS;
    milter_ = new Milter(o, [] { return std::make_unique<HeaderSession>(); });
    milter_->open();
    thread_ = new std::thread([] { milter_->serve(); });
  }
  static void TearDownTestSuite() {
    milter_->stop();
    thread_->join();
    delete thread_;
    delete milter_;
  }
  static std::string socket() { return "inet:" + std::to_string(port_) + "@127.0.0.1"; }

  static int port_;
  static Milter* milter_;
  static std::thread* thread_;
};

int TcpMilterTest::port_ = 0;
Milter* TcpMilterTest::milter_ = nullptr;
std::thread* TcpMilterTest::thread_ = nullptr;

const char* kPrologue = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client.example", "127.0.0.2") ~= nil then error("conninfo failed") end
mt.macro(conn, SMFIC_MAIL, "i", "4Xtcp")
if mt.mailfrom(conn, "<sender@example.com>") ~= nil then error("mailfrom failed") end
if mt.rcptto(conn, "<rcpt@example.net>") ~= nil then error("rcptto failed") end
)";

TEST_F(TcpMilterTest, AFailingHeaderIsAnsweredAtOnce) {
  std::string script = std::string(kPrologue) + R"(
mt.header(conn, "X-Header-Boom", "1")
local r = mt.getreply(conn)
mt.echo("HEADER=" .. tostring(r))
if r ~= SMFIR_REPLYCODE and r ~= SMFIR_TEMPFAIL then error("expected tempfail at the header") end
mt.disconnect(conn)
)";
  auto r = testing::run_miltertest(script, socket());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace mxguard::common::milter
