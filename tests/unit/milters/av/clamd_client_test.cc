// Tests milters/av/clamd_client.cc's framing byte for byte: a listener on a unix socket in a
// TempDir records what InstreamScan sends (the command, chunks of exactly --chunk-size but the
// last, the zero-length terminator) and answers like clamd.
#include "milters/av/clamd_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/fixtures/process.h"

namespace mxguard::milter::av {
namespace {

// Accepts one connection, reads until the peer's stream terminator, answers `reply`.
class Recorder {
 public:
  Recorder(const std::string& path, std::string reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      char buf[4096];
      while (received_.size() < 14 ||
             received_.compare(received_.size() - 4, 4, std::string(4, '\0')) != 0) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        received_.append(buf, static_cast<std::size_t>(n));
      }
      ::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~Recorder() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string received() {
    thread_.join();
    return received_;
  }

 private:
  int fd_;
  std::string reply_;
  std::string received_;
  std::thread thread_;
};

TEST(AvInstreamFraming, ChunksAreExactlyChunkSizeAndTheLastIsTheRest) {
  testing::TempDir dir;
  std::string path = (dir / "clamd.sock").string();
  Recorder rec(path, std::string("stream: OK\0", 11));
  auto spec = common::net::SocketSpec::parse("unix:" + path);
  InstreamScan scan(std::make_unique<ClamdConnection>(spec, std::chrono::seconds(2)), 10,
                    std::chrono::seconds(2));
  scan.write("abc");
  scan.write("defghijklmnopqrstuvw");  // 23 bytes so far: two full chunks go out
  EXPECT_EQ(scan.bytes_sent(), 20u);
  scan.write("xyz");
  auto r = scan.finish();
  EXPECT_EQ(r.kind, ClamdReply::Kind::kClean);
  EXPECT_EQ(scan.bytes_sent(), 26u);
  std::string expected = std::string("zINSTREAM\0", 10) + std::string("\0\0\0\x0a", 4) +
                         "abcdefghij" + std::string("\0\0\0\x0a", 4) + "klmnopqrst" +
                         std::string("\0\0\0\x06", 4) + "uvwxyz" + std::string(4, '\0');
  EXPECT_EQ(rec.received(), expected);
}

TEST(AvInstreamFraming, EmptyMessageIsJustCommandAndTerminator) {
  testing::TempDir dir;
  std::string path = (dir / "clamd.sock").string();
  Recorder rec(path, std::string("stream: Foo.Bar FOUND\0", 22));
  auto spec = common::net::SocketSpec::parse("unix:" + path);
  InstreamScan scan(std::make_unique<ClamdConnection>(spec, std::chrono::seconds(2)), 65536,
                    std::chrono::seconds(2));
  auto r = scan.finish();
  EXPECT_EQ(r.kind, ClamdReply::Kind::kInfected);
  EXPECT_EQ(r.virus, "Foo.Bar");
  EXPECT_EQ(rec.received(), std::string("zINSTREAM\0\0\0\0\0", 14));
}

TEST(AvInstreamFraming, NothingListeningIsAConnectError) {
  testing::TempDir dir;
  auto spec = common::net::SocketSpec::parse("unix:" + (dir / "none.sock").string());
  try {
    ClamdConnection c(spec, std::chrono::milliseconds(100));
    FAIL() << "connected";
  } catch (const ClamdError& ex) {
    EXPECT_EQ(ex.kind(), ClamdError::Kind::kConnect);
  }
}

}  // namespace
}  // namespace mxguard::milter::av
