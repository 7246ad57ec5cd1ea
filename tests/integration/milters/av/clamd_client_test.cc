// milters/av/clamd_client.cc against a real private clamd (tests/fixtures/clamd_server.h) and
// against fake ones: clean and EICAR over unix and TCP, many small chunks, clamd's stream
// size limit, failover to the next server, health checks bringing a server back, and a
// stalling or garbage-answering clamd failing within the timeout.
#include "milters/av/clamd_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/fixtures/clamd_server.h"

namespace mxguard::milter::av {
namespace {

using common::net::SocketSpec;
using std::chrono::milliseconds;
using testing::ClamdServer;
using testing::FakeClamd;

ClamdReply scan(ClamdPool& pool, const std::string& data, std::string* server = nullptr) {
  auto s = pool.start_scan();
  if (server) *server = s.server;
  s.scan->write(data);
  return s.scan->finish();
}

PoolOptions options(std::vector<std::string> servers) {
  PoolOptions o;
  for (const auto& s : servers) o.servers.push_back(SocketSpec::parse(s));
  o.connect_timeout = milliseconds(500);
  o.scan_timeout = milliseconds(2000);
  o.health_interval = milliseconds(200);
  o.min_backoff = milliseconds(100);
  return o;
}

std::string message(const std::string& body) {
  return "From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n\r\n" + body + "\r\n";
}

class AvClamdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { clamd_ = new ClamdServer(); }
  static void TearDownTestSuite() { delete clamd_; }
  static ClamdServer* clamd_;
};
ClamdServer* AvClamdClientTest::clamd_ = nullptr;

TEST_F(AvClamdClientTest, CleanAndEicarOverUnixAndTcp) {
  for (const auto& spec : {clamd_->unix_spec(), clamd_->inet_spec()}) {
    ClamdPool pool(options({spec}));
    EXPECT_TRUE(pool.ping(SocketSpec::parse(spec)));
    EXPECT_EQ(scan(pool, message("hello")).kind, ClamdReply::Kind::kClean) << spec;
    auto r = scan(pool, message(testing::eicar()));
    EXPECT_EQ(r.kind, ClamdReply::Kind::kInfected) << spec << " " << r.detail;
    EXPECT_EQ(r.virus, testing::kEicarSignature);
  }
}

TEST_F(AvClamdClientTest, EicarSplitAcrossManySmallChunksIsFound) {
  auto o = options({clamd_->unix_spec()});
  o.chunk_size = 7;
  ClamdPool pool(o);
  auto s = pool.start_scan();
  std::string m = message(std::string(100000, 'x') + "\r\n" + testing::eicar());
  for (std::size_t i = 0; i < m.size(); i += 1000) s.scan->write(m.substr(i, 1000));
  EXPECT_EQ(s.scan->bytes_sent(), m.size() / 7 * 7);
  auto r = s.scan->finish();
  EXPECT_EQ(r.kind, ClamdReply::Kind::kInfected) << r.detail;
  EXPECT_EQ(s.scan->bytes_sent(), m.size());
}

TEST_F(AvClamdClientTest, PackedAndArchivedTestFilesAreFoundAfterUnpacking) {
  if (!testing::have_clamav_testfiles()) GTEST_SKIP() << "clamav-testfiles not installed";
  ClamdPool pool(options({clamd_->unix_spec()}));
  int found = 0;
  for (const char* name : {"clam.exe", "clam.zip", "clam.7z", "clam.tar.gz", "clam.exe.bz2",
                           "clam.cab", "clam.exe.mbox.base64", "clam.mail", "clam-upx.exe"}) {
    std::string data = testing::read_file(testing::kTestFilesDir + "/" + name);
    ASSERT_FALSE(data.empty()) << name;
    auto r = scan(pool, data);
    EXPECT_EQ(r.kind, ClamdReply::Kind::kInfected) << name << ": " << r.detail;
    EXPECT_EQ(r.virus, testing::kClamExeSignature) << name;
    found += r.kind == ClamdReply::Kind::kInfected;
  }
  EXPECT_EQ(found, 9);
}

TEST(AvClamdClient, StreamSizeLimitIsReportedAsSuch) {
  ClamdServer small({.stream_max_length = "1M", .tcp = false});
  auto o = options({small.unix_spec()});
  ClamdPool pool(o);
  try {
    auto r = scan(pool, message(std::string(3 * 1024 * 1024, 'y')));
    EXPECT_EQ(r.kind, ClamdReply::Kind::kSizeLimit);
    EXPECT_NE(r.detail.find("size limit exceeded"), std::string::npos) << r.detail;
  } catch (const ClamdError& ex) {
    // clamd may close before we finish sending: the error still says what clamd said.
    EXPECT_EQ(ex.kind(), ClamdError::Kind::kSizeLimit) << ex.what();
    EXPECT_NE(std::string(ex.what()).find("size limit exceeded"), std::string::npos) << ex.what();
  }
}

TEST_F(AvClamdClientTest, FailsOverToTheNextServerAndMarksTheFirstDown) {
  testing::TempDir d;
  std::string dead = "unix:" + (d / "nothing.sock").string();
  ClamdPool pool(options({dead, clamd_->inet_spec()}));
  std::string server;
  EXPECT_EQ(scan(pool, message("hi"), &server).kind, ClamdReply::Kind::kClean);
  EXPECT_EQ(server, clamd_->inet_spec());
  EXPECT_FALSE(pool.is_up(dead));
  EXPECT_TRUE(pool.is_up(clamd_->inet_spec()));
  // The next scan goes straight to the live server.
  EXPECT_EQ(scan(pool, message("hi"), &server).kind, ClamdReply::Kind::kClean);
  EXPECT_EQ(server, clamd_->inet_spec());
}

TEST(AvClamdClient, NoServerReachableIsAConnectError) {
  testing::TempDir d;
  ClamdPool pool(options({"unix:" + (d / "a.sock").string(),
                          "inet:127.0.0.1:" + std::to_string(testing::free_tcp_port())}));
  try {
    pool.start_scan();
    FAIL() << "no error";
  } catch (const ClamdError& ex) {
    EXPECT_EQ(ex.kind(), ClamdError::Kind::kConnect);
  }
}

TEST(AvClamdClient, HealthCheckMarksAServerUpWhenItAnswersAgain) {
  ClamdServer clamd({.tcp = false});
  ClamdPool pool(options({clamd.unix_spec()}));
  pool.start_health_checks();
  clamd.stop();
  auto wait_for = [&](bool up) {
    for (int i = 0; i < 100 && pool.is_up(clamd.unix_spec()) != up; ++i) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    return pool.is_up(clamd.unix_spec()) == up;
  };
  EXPECT_TRUE(wait_for(false));
  clamd.start();
  EXPECT_TRUE(wait_for(true));
  pool.stop_health_checks();
}

TEST(AvClamdClient, StallingClamdTimesOut) {
  FakeClamd fake(FakeClamd::Mode::kStall);
  auto o = options({fake.inet_spec()});
  o.scan_timeout = milliseconds(500);
  ClamdPool pool(o);
  auto t0 = std::chrono::steady_clock::now();
  try {
    scan(pool, message("hello"));
    FAIL() << "no timeout";
  } catch (const ClamdError& ex) {
    EXPECT_EQ(ex.kind(), ClamdError::Kind::kTimeout) << ex.what();
  }
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(1500));
}

TEST(AvClamdClient, GarbageIsAnErrorNeverClean) {
  for (std::string g : {std::string("hello there\n"), std::string("stream: OK trailing\0", 20),
                        std::string("OK\0", 3), std::string(5000, 'A')}) {
    FakeClamd fake(FakeClamd::Mode::kGarbage, g);
    ClamdPool pool(options({fake.inet_spec()}));
    try {
      auto r = scan(pool, message("hello"));
      EXPECT_EQ(r.kind, ClamdReply::Kind::kError) << g.substr(0, 40);
    } catch (const ClamdError& ex) {
      EXPECT_EQ(ex.kind(), ClamdError::Kind::kProtocol) << ex.what();
    }
  }
}

TEST(AvClamdClient, ClosingWithoutReplyIsAnIoError) {
  FakeClamd fake(FakeClamd::Mode::kClose);
  ClamdPool pool(options({fake.inet_spec()}));
  try {
    auto s = pool.start_scan();
    s.scan->write(message("x"));
    s.scan->finish();
    FAIL() << "no error";
  } catch (const ClamdError& ex) {
    EXPECT_TRUE(ex.kind() == ClamdError::Kind::kIo || ex.kind() == ClamdError::Kind::kProtocol)
        << ex.what();
  }
}

}  // namespace
}  // namespace mxguard::milter::av
