// Our milter engine (common/milter/engine.h) against libmilter: the same transcripts of MTA
// commands go to a libmilter Milter and to an engine Milter in this process, serving the same
// recording session, and the bytes that come back must be the same (the differential test the
// engine is kept on). The transcripts are what Postfix sends (milter8.c): negotiation with and
// without the no-reply steps, macros per stage, IPv4/IPv6/unix/unknown clients, several
// messages and an abort on one connection, replies set and not, deferred answers of unanswered
// steps, exceptions, SKIP, and every modification at end of message. Then what only the engine
// has: its limits and timeouts, and many connections on few threads.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/milter/milter.h"
#include "tests/fixtures/process.h"

namespace mxguard::common::milter {
namespace {

// Writes down every callback with what it saw (and the macros of its stage), and acts on the
// addresses and headers of the transcript; at end of message the record goes out as a header.
class RecordingSession : public Session {
 public:
  Status on_connect(Context& c, const ConnectInfo& info) override {
    add("connect " + info.hostname + " [" + info.address + "]:" + std::to_string(info.port) +
        " j=" + c.macro("j").value_or("-"));
    return info.hostname == "accept.example" ? Status::kAccept : Status::kContinue;
  }
  Status on_helo(Context& c, std::string_view helo) override {
    add("helo " + std::string(helo) + " tls=" + c.macro("{tls_version}").value_or("-"));
    return helo == "reject.example" ? Status::kReject : Status::kContinue;
  }
  Status on_mail_from(Context& c, const std::vector<std::string>& args) override {
    std::string line = "mail";
    for (const auto& a : args) line += " " + a;
    add(line + " i=" + c.queue_id() + " rcpt_addr=" + c.macro("{rcpt_addr}").value_or("-"));
    if (args[0] == "<tempfail@example.org>") {
      c.set_reply("421", "4.7.0", "Try again");
      return Status::kTempfail;
    }
    return Status::kContinue;
  }
  Status on_rcpt(Context& c, const std::vector<std::string>& args) override {
    add("rcpt " + args[0] + " rcpt_addr=" + c.macro("{rcpt_addr}").value_or("-"));
    if (args[0] == "<reject@example.net>") {
      c.set_reply("550", "5.1.1", "No such user, 100% sure");
      return Status::kReject;
    }
    if (args[0] == "<tempfail@example.net>") return Status::kTempfail;  // no reply set
    if (args[0] == "<mismatch@example.net>") {
      c.set_reply("550", "5.7.1", "kept for a reject");
      return Status::kTempfail;  // a 5xx reply does not go with a tempfail
    }
    if (args[0] == "<discard@example.net>") return Status::kDiscard;
    if (args[0] == "<boom@example.net>") throw std::runtime_error("rcpt failure");
    return Status::kContinue;
  }
  Status on_header(Context&, std::string_view name, std::string_view value) override {
    add("header " + std::string(name) + ":" + std::string(value));
    if (name == "X-Boom") throw std::runtime_error("header failure");
    if (name == "X-Reject-Header") return Status::kReject;
    if (name == "X-Skip") skip_ = true;
    if (name == "X-Mods") mods_ = true;
    if (name == "X-Long-Reply") long_reply_ = true;
    return Status::kContinue;
  }
  Status on_eoh(Context& c) override {
    add("eoh i=" + c.queue_id());
    return Status::kContinue;
  }
  Status on_body(Context&, std::string_view chunk) override {
    add("body " + std::to_string(chunk.size()));
    return skip_ ? Status::kSkip : Status::kContinue;
  }
  Status on_eom(Context& c) override {
    add("eom i=" + c.queue_id());
    if (long_reply_) {
      c.set_reply("550", "5.7.1", std::string(2000, 'x'));  // over the limit: throws
    }
    if (mods_) {
      c.progress();
      c.insert_header(0, "X-First", "inserted");
      c.change_header("Subject", 1, "changed");
      c.delete_header("X-Mods", 1);
      c.quarantine("held for review");
    }
    c.add_header("X-Record", record_);
    record_.clear();
    skip_ = mods_ = long_reply_ = false;
    return Status::kAccept;
  }
  void on_abort(Context&) override {
    add("abort");
    skip_ = mods_ = long_reply_ = false;
  }
  void on_close(Context&) override { ++closed; }

  static std::atomic<int> closed;

 private:
  void add(const std::string& s) { record_ += (record_.empty() ? "" : "; ") + s; }
  std::string record_;
  bool skip_ = false, mods_ = false, long_reply_ = false;
};
std::atomic<int> RecordingSession::closed{0};

MilterOptions options(const std::string& listen, MilterOptions::Engine engine) {
  MilterOptions o;
  o.name = "mxguard-engine-test";
  o.listen = listen;
  o.actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
  o.engine = engine;
  o.engine_threads = 4;
  o.timeout_seconds = 2;
  return o;
}

// MTA commands as bytes.
std::string packet(char cmd, std::string_view data = {}) {
  std::string p;
  std::uint32_t len = htonl(static_cast<std::uint32_t>(data.size() + 1));
  p.append(reinterpret_cast<const char*>(&len), 4);
  p.push_back(cmd);
  p.append(data);
  return p;
}
std::string u32(std::uint32_t v) {
  v = htonl(v);
  return std::string(reinterpret_cast<const char*>(&v), 4);
}
std::string z(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) {
    s.append(p);
    s.push_back('\0');
  }
  return s;
}
// Postfix 3.7's offer: every action, every step flag (0x1fffff).
std::string optneg(std::uint32_t protocol = 0x1fffff, std::uint32_t actions = 0x1ff) {
  return packet(SMFIC_OPTNEG, u32(6) + u32(actions) + u32(protocol));
}
std::string macro(char stage, std::initializer_list<std::string_view> pairs) {
  return packet(SMFIC_MACRO, std::string(1, stage) + z(pairs));
}
std::string connect4(const std::string& host, const std::string& addr, std::uint16_t port) {
  std::uint16_t p = htons(port);
  return packet(SMFIC_CONNECT, host + '\0' + SMFIA_INET +
                                   std::string(reinterpret_cast<const char*>(&p), 2) + addr + '\0');
}
std::string connect6(const std::string& host, const std::string& addr, std::uint16_t port) {
  std::uint16_t p = htons(port);
  return packet(SMFIC_CONNECT, host + '\0' + SMFIA_INET6 +
                                   std::string(reinterpret_cast<const char*>(&p), 2) + addr + '\0');
}
std::string header(const std::string& name, const std::string& value) {
  return packet(SMFIC_HEADER, z({name, value}));
}

// One message as Postfix sends it after connect and HELO.
std::string message(const std::string& qid, const std::string& from,
                    const std::vector<std::string>& rcpts,
                    const std::vector<std::pair<std::string, std::string>>& headers,
                    const std::string& body) {
  std::string t = macro(SMFIC_MAIL, {"i", qid, "{mail_addr}", from}) +
                  packet(SMFIC_MAIL, z({"<" + from + ">", "SIZE=100"}));
  for (const auto& r : rcpts) {
    t += macro(SMFIC_RCPT, {"{rcpt_addr}", r}) + packet(SMFIC_RCPT, z({"<" + r + ">"}));
  }
  t += macro(SMFIC_DATA, {"i", qid}) + packet(SMFIC_DATA);
  for (const auto& [n, v] : headers) t += header(n, v);
  t += macro(SMFIC_EOH, {"i", qid}) + packet(SMFIC_EOH);
  if (!body.empty()) t += packet(SMFIC_BODY, body);
  t += macro(SMFIC_BODYEOB, {"i", qid}) + packet(SMFIC_BODYEOB);
  return t;
}

std::string opening(std::uint32_t protocol = 0x1fffff) {
  return optneg(protocol) + macro(SMFIC_CONNECT, {"j", "mx.example", "{daemon_name}", "smtpd"}) +
         connect4("client.example", "198.51.100.7", 40001) +
         macro(SMFIC_HELO, {"{tls_version}", "TLSv1.3"}) +
         packet(SMFIC_HELO, z({"client.example"}));
}

int dial(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  for (int i = 0; i < 100; ++i) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::close(fd);
  return -1;
}

// Sends the whole transcript and reads until the milter closes the connection (or `wait`).
std::string converse(const std::string& path, const std::string& transcript,
                     std::chrono::milliseconds wait = std::chrono::milliseconds(5000)) {
  int fd = dial(path);
  if (fd < 0) return "<no connection>";
  std::size_t off = 0;
  while (off < transcript.size()) {
    ssize_t n = ::send(fd, transcript.data() + off, transcript.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + wait;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      got += "<timeout>";
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return got;
}

// The reply packets, readable: "c", "a", "y:550 5.1.1 …", "h:X-Record=…", "O:…".
std::vector<std::string> replies(const std::string& bytes) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    std::uint32_t len;
    std::memcpy(&len, bytes.data() + pos, 4);
    len = ntohl(len);
    if (len == 0 || pos + 4 + len > bytes.size()) {
      out.push_back("<truncated>");
      break;
    }
    char code = bytes[pos + 4];
    std::string data = bytes.substr(pos + 5, len - 1);
    for (auto& ch : data) {
      if (ch == '\0') ch = '|';
    }
    out.push_back(data.empty() ? std::string(1, code) : std::string(1, code) + ":" + data);
    pos += 4 + len;
  }
  if (pos < bytes.size() && (out.empty() || out.back() != "<truncated>")) {
    out.push_back("<rest:" + bytes.substr(pos) + ">");
  }
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto factory = [] { return std::make_unique<RecordingSession>(); };
    lib_ = new Milter(options("unix:" + lib_path(), MilterOptions::Engine::kLibmilter), factory);
    ours_ = new Milter(options("unix:" + our_path(), MilterOptions::Engine::kMxguard), factory);
    lib_->open();
    ours_->open();
    lib_thread_ = new std::thread([] { lib_->serve(); });
    our_thread_ = new std::thread([] { ours_->serve(); });
  }
  static void TearDownTestSuite() {
    lib_->stop();
    ours_->stop();
    lib_thread_->join();
    our_thread_->join();
    delete lib_thread_;
    delete our_thread_;
    delete lib_;
    delete ours_;
    delete dir_;
  }
  static std::string lib_path() { return (*dir_ / "libmilter.sock").string(); }
  static std::string our_path() { return (*dir_ / "mxguard.sock").string(); }

  // The transcript through both engines; returns our engine's replies after checking that
  // libmilter's are the same.
  static std::vector<std::string> both(const std::string& transcript) {
    auto theirs = replies(converse(lib_path(), transcript));
    auto ours = replies(converse(our_path(), transcript));
    EXPECT_EQ(ours, theirs);
    return ours;
  }

  static testing::TempDir* dir_;
  static Milter *lib_, *ours_;
  static std::thread *lib_thread_, *our_thread_;
};
testing::TempDir* EngineTest::dir_ = nullptr;
Milter* EngineTest::lib_ = nullptr;
Milter* EngineTest::ours_ = nullptr;
std::thread* EngineTest::lib_thread_ = nullptr;
std::thread* EngineTest::our_thread_ = nullptr;

bool has(const std::vector<std::string>& v, const std::string& prefix) {
  for (const auto& s : v) {
    if (s.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

TEST_F(EngineTest, AMessageAsPostfixSendsIt) {
  auto r = both(opening() +
                message("4Xk2Qz1abc", "s@example.org", {"r@example.net"},
                        {{"Subject", " hello"}, {"From", " <s@example.org>"}}, "body\r\n") +
                packet(SMFIC_QUIT));
  ASSERT_EQ(r.size(), 5u) << ::testing::PrintToString(r);
  EXPECT_EQ(r[0].substr(0, 2), "O:");
  EXPECT_EQ(r[1], "c");  // RCPT (everything before it goes unanswered on a unix socket)
  EXPECT_EQ(r[2], "c");  // DATA
  EXPECT_EQ(r[3],
            "h:X-Record|connect client.example [198.51.100.7]:40001 j=mx.example; helo "
            "client.example tls=TLSv1.3; mail <s@example.org> SIZE=100 i=4Xk2Qz1abc "
            "rcpt_addr=-; rcpt <r@example.net> rcpt_addr=r@example.net; header Subject: hello; "
            "header From: <s@example.org>; eoh i=4Xk2Qz1abc; body 6; eom i=4Xk2Qz1abc|");
  EXPECT_EQ(r[4], "a");
}

TEST_F(EngineTest, AnMtaWithoutNoReplyStepsGetsAContinueForEachStep) {
  // Postfix before 2.6 offered none of SMFIP_NR_*: libmilter answers them with continue.
  auto r = both(opening(0x0007ff) +
                message("4XA", "s@example.org", {"r@example.net"}, {{"Subject", "x"}}, "b\r\n") +
                packet(SMFIC_QUIT));
  EXPECT_EQ(r.back(), "a");
  EXPECT_GE(r.size(), 10u) << ::testing::PrintToString(r);
}

TEST_F(EngineTest, SeveralMessagesAndAnAbortOnOneConnection) {
  std::string t = opening() + message("4XB1", "a@example.org", {"r@example.net"}, {}, "1\r\n");
  // The second message is aborted after RCPT (RSET): the macros of MAIL and RCPT go with it.
  t += macro(SMFIC_MAIL, {"i", "4XB2"}) + packet(SMFIC_MAIL, z({"<b@example.org>"})) +
       macro(SMFIC_RCPT, {"{rcpt_addr}", "x@example.net"}) +
       packet(SMFIC_RCPT, z({"<x@example.net>"})) + packet(SMFIC_ABORT);
  // The third one sees no RCPT macro of the second.
  t += macro(SMFIC_MAIL, {"i", "4XB3"}) + packet(SMFIC_MAIL, z({"<c@example.org>"})) +
       packet(SMFIC_RCPT, z({"<y@example.net>"})) + packet(SMFIC_EOH) + packet(SMFIC_BODYEOB) +
       packet(SMFIC_QUIT);
  auto r = both(t);
  EXPECT_TRUE(has(r,
                  "h:X-Record|mail <b@example.org> i=4XB2 rcpt_addr=-; rcpt <x@example.net> "
                  "rcpt_addr=x@example.net; abort; mail <c@example.org> i=4XB3 rcpt_addr=-; "
                  "rcpt <y@example.net> rcpt_addr=-; eoh i=4XB3; eom i=4XB3|"))
      << ::testing::PrintToString(r);
}

TEST_F(EngineTest, RepliesAtRcptWithAndWithoutTheirText) {
  auto r = both(opening() +
                message("4XC", "s@example.org",
                        {"reject@example.net", "tempfail@example.net", "mismatch@example.net",
                         "ok@example.net"},
                        {}, "x\r\n") +
                packet(SMFIC_QUIT));
  ASSERT_GE(r.size(), 5u);
  EXPECT_EQ(r[1], "y:550 5.1.1 No such user, 100%% sure|");
  EXPECT_EQ(r[2], "t");
  EXPECT_EQ(r[3], "t");  // the 5xx text waits for a reject
  EXPECT_EQ(r[4], "c");
}

TEST_F(EngineTest, AnUnansweredStepsAnswerComesAtTheNextAnsweredStep) {
  // A tempfail at MAIL FROM (unanswered) comes out at RCPT, with its reply.
  auto r = both(opening() + message("4XD", "tempfail@example.org", {"r@example.net"}, {}, "") +
                packet(SMFIC_QUIT));
  ASSERT_GE(r.size(), 2u);
  EXPECT_EQ(r[1], "y:421 4.7.0 Try again|");
}

TEST_F(EngineTest, ExceptionsBecomeTheConfiguredTempfail) {
  // A header callback (unanswered) throws: the 451 comes at end of message; an RCPT throws:
  // at once.
  auto r = both(opening() +
                message("4XE", "s@example.org", {"boom@example.net", "r@example.net"},
                        {{"X-Boom", "1"}}, "x\r\n") +
                packet(SMFIC_QUIT));
  ASSERT_GE(r.size(), 4u);
  EXPECT_EQ(r[1], "y:451 4.3.0 Temporary internal error, try again later|");
  EXPECT_EQ(r.back(), "y:451 4.3.0 Temporary internal error, try again later|");
  // A reply text over libmilter's limit fails in both engines alike.
  auto l = both(opening() +
                message("4XF", "s@example.org", {"r@example.net"}, {{"X-Long-Reply", "1"}}, "") +
                packet(SMFIC_QUIT));
  EXPECT_EQ(l.back(), "y:451 4.3.0 Temporary internal error, try again later|");
}

TEST_F(EngineTest, EveryModificationAndProgressAtEndOfMessage) {
  auto r = both(opening() +
                message("4XG", "s@example.org", {"r@example.net"},
                        {{"Subject", "old"}, {"X-Mods", "yes"}}, "x\r\n") +
                packet(SMFIC_QUIT));
  EXPECT_TRUE(has(r, "p")) << ::testing::PrintToString(r);
  EXPECT_TRUE(has(r, "i:||||X-First|inserted|")) << ::testing::PrintToString(r);
  EXPECT_TRUE(has(r, "q:held for review|"));
  EXPECT_EQ(r.back(), "a");
}

TEST_F(EngineTest, SkipRejectAndAcceptEndTheirPart) {
  auto skip = both(
      opening() +
      message("4XH", "s@example.org", {"r@example.net"}, {{"X-Skip", "1"}}, std::string(100, 'b')) +
      packet(SMFIC_QUIT));
  EXPECT_EQ(skip.back(), "a");
  // A header's reject (an unanswered step, even where the MTA would wait for its answer: the
  // MTA gets a continue) is the answer at end of message; the next message starts clean.
  auto rej =
      both(opening(0x0007ff) +
           message("4XI", "s@example.org", {"r@example.net"}, {{"X-Reject-Header", "1"}}, "x\r\n") +
           message("4XJ", "t@example.org", {"r@example.net"}, {}, "") + packet(SMFIC_QUIT));
  EXPECT_TRUE(has(rej, "r")) << ::testing::PrintToString(rej);
  EXPECT_EQ(rej.back(), "a");
  // A client accepted at connect, a HELO rejected.
  both(optneg() + connect4("accept.example", "198.51.100.8", 1) + packet(SMFIC_QUIT));
  both(optneg(0x0007ff) + connect4("c.example", "198.51.100.9", 2) +
       packet(SMFIC_HELO, z({"reject.example"})) + packet(SMFIC_QUIT));
}

TEST_F(EngineTest, ClientsOfEveryAddressFamily) {
  // An RCPT outside a message: libmilter ignores it, ours closes the connection; neither
  // answers it, so the bytes are the same (both() checks that).
  both(optneg() + connect6("v6.example", "2001:db8:0:0::7", 25) + packet(SMFIC_RCPT, "") +
       packet(SMFIC_QUIT));
  std::string unix_client = packet(SMFIC_CONNECT, std::string("localhost") + '\0' + SMFIA_UNIX +
                                                      std::string(2, '\0') + "/tmp/x" + '\0');
  std::string unknown = packet(SMFIC_CONNECT, std::string("local") + '\0' + SMFIA_UNKNOWN);
  for (const auto& c : {connect6("v6.example", "2001:db8::7", 25), unix_client, unknown}) {
    auto r = both(optneg() + c + packet(SMFIC_HELO, z({"h"})) +
                  message("4XJ", "s@example.org", {"r@example.net"}, {}, "") + packet(SMFIC_QUIT));
    EXPECT_EQ(r.back(), "a");
  }
  auto r = replies(converse(our_path(), optneg() + connect6("v6.example", "2001:db8:0::7", 25) +
                                            message("4XK", "s@example.org", {"r@e.net"}, {}, "") +
                                            packet(SMFIC_QUIT)));
  EXPECT_TRUE(has(r, "h:X-Record|connect v6.example [2001:db8::7]:25"))
      << ::testing::PrintToString(r);
}

// What only our engine has: limits, protocol errors and timeouts close the connection and run
// the session's abort and close callbacks; the milter serves on.
TEST_F(EngineTest, AnOversizedOrMalformedPacketClosesOnlyThatConnection) {
  int closed = RecordingSession::closed.load();
  std::string huge = u32(64 * 1024 * 1024) + "B";  // a 64 MiB packet is refused unread
  auto r = replies(converse(our_path(), opening() + huge));
  EXPECT_EQ(r.size(), 1u) << ::testing::PrintToString(r);  // the negotiation, then EOF
  EXPECT_EQ(replies(converse(our_path(), packet('Z') + optneg())).size(), 0u);
  EXPECT_EQ(replies(converse(our_path(), optneg() + packet(SMFIC_CONNECT, "no-nul"))).size(), 1u);
  EXPECT_EQ(replies(converse(our_path(), optneg() + packet(SMFIC_RCPT, z({"<r@x>"})))).size(),
            1u);  // RCPT before connect
  EXPECT_GT(RecordingSession::closed.load(), closed);
  auto ok = replies(converse(
      our_path(), opening() + message("4XL", "s@e.org", {"r@e.net"}, {}, "") + packet(SMFIC_QUIT)));
  EXPECT_EQ(ok.back(), "a");
}

TEST_F(EngineTest, ASilentMtaIsClosedAfterTheTimeout) {
  int closed = RecordingSession::closed.load();
  auto start = std::chrono::steady_clock::now();
  // No QUIT: the engine waits milter-timeout (2 s here) for the next command, then closes.
  auto r = replies(converse(our_path(), opening(), std::chrono::milliseconds(8000)));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.size(), 1u) << ::testing::PrintToString(r);
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::milliseconds(6000));
  for (int i = 0; i < 50 && RecordingSession::closed.load() == closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(RecordingSession::closed.load(), closed);
}

TEST_F(EngineTest, ManyConnectionsAtOnceOnFourThreads) {
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0};
  for (int i = 0; i < 40; ++i) {
    clients.emplace_back([&, i] {
      auto r = replies(
          converse(our_path(), opening() +
                                   message("4XM" + std::to_string(i), "s@e.org", {"r@e.net"},
                                           {{"Subject", "x"}}, std::string(70000, 'b')) +
                                   packet(SMFIC_QUIT)));
      if (!r.empty() && r.back() == "a") ++accepted;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(accepted.load(), 40);
}

}  // namespace
}  // namespace mxguard::common::milter
