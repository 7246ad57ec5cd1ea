// End to end through a private Postfix with the real mxguard-av binary and a private clamd:
// EICAR as a base64 MIME attachment is refused with 550 5.7.1 and the virus name; clean mail
// is delivered with X-Virus-Status (a forged one replaced); clamd down → 4xx, and the retry
// once clamd is back is delivered exactly once; a stalling or garbage-answering clamd →
// tempfail within --scan-timeout; a 30 MB message with --max-size 25M passes unscanned while
// the daemon's peak RSS stays small; with two clamd servers and one down the other is used.
// Must never touch the system Postfix or clamd.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <thread>

#include "tests/fixtures/clamd_server.h"
#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/milters/av/mxguard-av";

// Peak resident set size (VmHWM) of a process in KiB, or -1.
long vm_hwm_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

std::string base64(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(s[i]) << 16;
    if (i + 1 < s.size()) v |= static_cast<unsigned char>(s[i + 1]) << 8;
    if (i + 2 < s.size()) v |= static_cast<unsigned char>(s[i + 2]);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < s.size() ? t[(v >> 6) & 63] : '=';
    out += i + 2 < s.size() ? t[v & 63] : '=';
  }
  return out;
}

std::string mime_with_attachment(const std::string& subject, const std::string& content) {
  return "From: rita@remote.test\r\nTo: bob@example.test\r\nSubject: " + subject +
         "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=b1\"\r\n\r\n"
         "--=b1\r\nContent-Type: text/plain\r\n\r\nPlease find the file attached.\r\n"
         "--=b1\r\nContent-Type: application/octet-stream; name=\"invoice.com\"\r\n"
         "Content-Transfer-Encoding: base64\r\n"
         "Content-Disposition: attachment; filename=\"invoice.com\"\r\n\r\n" +
         base64(content) + "\r\n--=b1--\r\n";
}

class PostfixAvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    clamd_ = std::make_unique<ClamdServer>();
  }

  void start_av(const std::string& clamd_specs, const std::string& extra = "") {
    port_ = free_tcp_port();
    write_file(dir_ / "av.conf", "listen = inet:127.0.0.1:" + std::to_string(port_) +
                                     "\nclamd = " + clamd_specs +
                                     "\nheader-host = mx.mxguard.test\n"
                                     "skip-networks = 127.0.0.1/32\n" +
                                     extra);
    av_ = Process(
        {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "av.conf").string()},
        dir_ / "av.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, seconds(10))) << av_.log();
    PostfixInstance::Options o;
    o.smtpd_milters = "inet:127.0.0.1:" + std::to_string(port_);
    o.listen_addresses = {"127.0.0.1", "127.0.0.2"};
    o.extra_main_cf = {"message_size_limit = 40000000"};
    postfix_ = std::make_unique<PostfixInstance>(o);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- mxguard-av log:\n" << av_.log();
      if (postfix_) std::cerr << "--- Postfix maillog:\n" << postfix_->maillog();
      if (clamd_)
        std::cerr << "--- clamd log (tail):\n"
                  << clamd_->log().substr(clamd_->log().size() > 2000 ? clamd_->log().size() - 2000
                                                                      : 0);
    }
  }

  SwaksResult send(const std::string& data) {
    SwaksOptions m;
    m.from = "rita@remote.test";
    m.to = {"bob@example.test"};
    m.local_interface = "127.0.0.2";  // external: 127.0.0.1 is in skip-networks
    m.data = data;
    m.timeout_seconds = 120;
    return postfix_->send(m);
  }

  std::vector<DeliveredMessage> delivered_with(const std::string& needle, int want = 1) {
    std::vector<DeliveredMessage> out;
    for (int i = 0; i < 100; ++i) {
      out.clear();
      for (auto& m : postfix_->delivered()) {
        if (m.raw.find(needle) != std::string::npos) out.push_back(m);
      }
      if (static_cast<int>(out.size()) >= want) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return out;
  }

  bool log_has(const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      if (av_.log().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  TempDir dir_;
  std::unique_ptr<ClamdServer> clamd_;
  int port_ = 0;
  Process av_;
  std::unique_ptr<PostfixInstance> postfix_;
};

TEST_F(PostfixAvTest, EicarAttachmentIsRejectedWith550) {
  start_av(clamd_->unix_spec());
  SwaksResult r = send(mime_with_attachment("eicar e2e", eicar()));
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("550 5.7.1 Virus found: " + kEicarSignature));
  EXPECT_EQ(postfix_->queue_size(), 0u);
  EXPECT_TRUE(log_has("verdict=infected action=reject virus=" + kEicarSignature));
}

TEST_F(PostfixAvTest, CleanMailIsDeliveredWithTheStatusHeaderAndForgedOnesReplaced) {
  start_av(clamd_->unix_spec());
  std::string data = "X-Virus-Status: clean\r\nX-Virus-Scanned: by nobody\r\n" +
                     mime_with_attachment("clean e2e", "just a harmless file\n");
  SwaksResult r = send(data);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("clean e2e");
  ASSERT_EQ(d.size(), 1u) << postfix_->maillog();
  EXPECT_EQ(d[0].header("X-Virus-Status"), std::vector<std::string>{"clean"}) << d[0].headers();
  auto scanned = d[0].header("X-Virus-Scanned");
  ASSERT_EQ(scanned.size(), 1u) << d[0].headers();
  EXPECT_THAT(scanned[0], HasSubstr("mxguard-av "));
  EXPECT_THAT(scanned[0], HasSubstr(" on mx.mxguard.test"));
  EXPECT_EQ(d[0].raw.find("by nobody"), std::string::npos);
  EXPECT_TRUE(log_has(r.queue_id + ": verdict=clean action=accept"));
}

TEST_F(PostfixAvTest, ClamdDownTempfailsAndTheRetryIsDeliveredOnce) {
  start_av(clamd_->unix_spec(), "health-interval = 500ms\n");
  clamd_->stop();
  std::string data = mime_with_attachment("retry e2e", "harmless\n");
  SwaksResult r = send(data);
  EXPECT_EQ(r.data_code, 451) << r.transcript;
  EXPECT_THAT(r.transcript, HasSubstr("4.3.0 Virus scanner unavailable"));
  EXPECT_EQ(postfix_->queue_size(), 0u);
  EXPECT_TRUE(log_has("verdict=error action=tempfail"));
  clamd_->start();
  // The client retries (as any MTA does after a 4xx).
  r = send(data);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("retry e2e");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].header("X-Virus-Status"), std::vector<std::string>{"clean"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(delivered_with("retry e2e").size(), 1u) << "delivered more than once";
}

TEST_F(PostfixAvTest, StallingOrGarbageClamdTempfailsWithinTheTimeout) {
  FakeClamd stall(FakeClamd::Mode::kStall);
  FakeClamd garbage(FakeClamd::Mode::kGarbage, "I am not clamd\n");
  start_av(stall.inet_spec(), "scan-timeout = 1s\n");
  auto t0 = std::chrono::steady_clock::now();
  SwaksResult r = send(mime_with_attachment("stall e2e", "x\n"));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.data_code, 451) << r.transcript;
  EXPECT_LT(took, seconds(5));
  EXPECT_TRUE(log_has("reason=\"timeout waiting for clamd's reply\""));
  // Now the garbage answerer (a reload with the new clamd address).
  std::string conf = read_file(dir_ / "av.conf");
  conf.replace(conf.find(stall.inet_spec()), stall.inet_spec().size(), garbage.inet_spec());
  write_file(dir_ / "av.conf", conf);
  ::kill(av_.pid(), SIGUSR1);
  ASSERT_TRUE(log_has("reload: done"));
  r = send(mime_with_attachment("garbage e2e", "x\n"));
  EXPECT_EQ(r.data_code, 451) << r.transcript;
  EXPECT_TRUE(log_has("unexpected reply: I am not clamd"));
  EXPECT_EQ(postfix_->queue_size(), 0u);
}

TEST_F(PostfixAvTest, ThirtyMegabyteMessagePassesUnscannedWithSmallRss) {
  start_av(clamd_->unix_spec(), "max-size = 25M\n");
  std::string body;
  body.reserve(31 * 1024 * 1024);
  std::string line(76, 'q');
  while (body.size() < 30 * 1024 * 1024) body += line + "\r\n";
  SwaksResult r =
      send("From: rita@remote.test\r\nTo: bob@example.test\r\nSubject: big e2e\r\n\r\n" + body);
  body.clear();
  body.shrink_to_fit();
  ASSERT_EQ(r.data_code, 250) << r.transcript.substr(0, 2000);
  auto d = delivered_with("Subject: big e2e");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].header("X-Virus-Status"), std::vector<std::string>{"unscanned (oversize)"});
  EXPECT_GT(d[0].raw.size(), 30u * 1024 * 1024);
  EXPECT_TRUE(log_has("verdict=oversize action=accept"));
  long hwm = vm_hwm_kib(av_.pid());
  std::cout << "mxguard-av VmHWM after a 30 MB message: " << hwm << " kB\n";
  RecordProperty("vm_hwm_kib", std::to_string(hwm));
  EXPECT_GT(hwm, 0);
  EXPECT_LT(hwm, 30 * 1024);
}

TEST_F(PostfixAvTest, TwentyMegabyteMessageIsStreamedToClamdWithSmallRss) {
  start_av(clamd_->unix_spec(), "max-size = 25M\n");
  std::string body;
  std::string line(76, 'z');
  while (body.size() < 20 * 1024 * 1024) body += line + "\r\n";
  SwaksResult r =
      send("From: rita@remote.test\r\nTo: bob@example.test\r\nSubject: large e2e\r\n\r\n" + body +
           eicar() + "\r\n");
  // The virus is at the very end: found only if every chunk reached clamd.
  EXPECT_EQ(r.data_code, 550) << r.transcript.substr(0, 2000);
  EXPECT_TRUE(log_has("verdict=infected action=reject"));
  long hwm = vm_hwm_kib(av_.pid());
  std::cout << "mxguard-av VmHWM after streaming 20 MB to clamd: " << hwm << " kB\n";
  RecordProperty("vm_hwm_kib", std::to_string(hwm));
  EXPECT_LT(hwm, 30 * 1024);
}

TEST_F(PostfixAvTest, WithTwoClamdServersAndOneDownTheOtherIsUsed) {
  std::string dead = "inet:127.0.0.1:" + std::to_string(free_tcp_port());
  start_av(dead + ", " + clamd_->inet_spec());
  SwaksResult r = send(mime_with_attachment("failover e2e", eicar()));
  EXPECT_EQ(r.data_code, 550) << r.transcript;
  r = send(mime_with_attachment("failover clean e2e", "fine\n"));
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  ASSERT_EQ(delivered_with("failover clean e2e").size(), 1u);
  EXPECT_TRUE(
      log_has(r.queue_id + ": verdict=clean action=accept virus=- clamd=" + clamd_->inet_spec()));
  EXPECT_THAT(av_.log(), HasSubstr("clamd " + dead + " is down"));
}

}  // namespace
}  // namespace mxguard::testing
