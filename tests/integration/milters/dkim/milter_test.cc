// mxguard-dkim's milter in-process, driven by miltertest: internal and SASL-authenticated
// mail is signed (RSA + Ed25519) and the signatures verify with python3-dkim; external mail
// is verified into one Authentication-Results header; forged A-R headers claiming our
// authserv-id are removed; failure actions follow the --on-* options.
#include <gtest/gtest.h>

#include <thread>

#include "common/authres/seal.h"
#include "milters/dkim/dkim_milter.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

using testing::between;
using testing::crlf;
using testing::TempDir;

constexpr const char* kSecret = "dkim-test-hop-secret-0123456789";

class DkimMilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                                    "rsa_keygen_bits:2048", "-out", (*dir_ / "rsa.pem").string()}),
              0);
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out",
                                    (*dir_ / "ed.pem").string()}),
              0);
    rsa_record_ = load_private_key((*dir_ / "rsa.pem").string()).public_record;
    ed_record_ = load_private_key((*dir_ / "ed.pem").string()).public_record;
    testing::write_file(*dir_ / "keys.txt", "rsa._domainkey.example.test " + rsa_record_ +
                                                "\ned._domainkey.example.test " + ed_record_ +
                                                "\n");
    port_ = testing::free_tcp_port();
    Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(port_);
    o.authserv_id = "mx.mxguard.test";
    testing::write_file(*dir_ / "hop-secret", std::string(kSecret) + "\n");
    o.hop_secret_file = (*dir_ / "hop-secret").string();
    o.domain = {"example.test"};
    o.selector = {"rsa", "ed"};
    o.key_file = {(*dir_ / "rsa.pem").string(), (*dir_ / "ed.pem").string()};
    o.internal_hosts = {"127.0.0.1"};
    service_ = new DkimService(o);
    service_->set_key_lookup([](const std::string& name) {
      if (name == "rsa._domainkey.example.test") {
        return KeyLookupResult{KeyLookupResult::Kind::kFound, rsa_record_, "ok"};
      }
      if (name == "ed._domainkey.example.test") {
        return KeyLookupResult{KeyLookupResult::Kind::kFound, ed_record_, "ok"};
      }
      if (name.find("slow") != std::string::npos) {
        return KeyLookupResult{KeyLookupResult::Kind::kTempError, "", "timeout"};
      }
      return KeyLookupResult{KeyLookupResult::Kind::kNotFound, "", "nxdomain"};
    });
    service_->open();
    thread_ = new std::thread([] { service_->serve(); });
  }
  static void TearDownTestSuite() {
    service_->stop();
    thread_->join();
    delete thread_;
    delete service_;
    delete dir_;
  }
  static std::string socket() { return "inet:" + std::to_string(port_) + "@127.0.0.1"; }

  // A miltertest script: connect from `client`, optional SASL login, the given headers
  // ({name, raw value}), body, EOM; echoes the headers the filter added.
  static std::string script(const std::string& client, const std::string& auth,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            const std::string& body, const std::string& expect = "SMFIR_ACCEPT") {
    std::string s = R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client.example", ")" +
                    client + R"(") ~= nil then error("conninfo") end
mt.macro(conn, SMFIC_MAIL, "i", "4Xk2Qz1abc", "{auth_authen}", ")" +
                    auth + R"(")
if mt.mailfrom(conn, "<alice@example.test>") ~= nil then error("mailfrom failed") end
)";
    for (const auto& [n, v] : headers) {
      s += "if mt.header(conn, \"" + n + "\", \"" + v + "\") ~= nil then error(\"header\") end\n";
    }
    s += "mt.eoh(conn)\nmt.bodystring(conn, \"" + body + "\")\nmt.eom(conn)\n";
    s += "local r = mt.getreply(conn)\nmt.echo(\"REPLY=\" .. tostring(r))\n";
    s += "if r ~= " + expect + " then error(\"unexpected reply \" .. tostring(r)) end\n";
    s += R"(
for i = 0, 3 do
  local v = mt.getheader(conn, "DKIM-Signature", i)
  if v ~= nil then mt.echo("SIG" .. i .. "<<" .. v .. ">>") end
  local a = mt.getheader(conn, "Authentication-Results", i)
  if a ~= nil then mt.echo("AR" .. i .. "<<" .. a .. ">>") end
end
if mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results") then mt.echo("AR-DELETED") end
mt.disconnect(conn)
)";
    return s;
  }

  // Assembles the signed message and runs python3-dkim on it.
  static std::string python_verify(const std::vector<std::string>& sigs,
                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                   const std::string& body, bool* ok) {
    TempDir d;
    std::string msg;
    for (const auto& s : sigs) msg += crlf("DKIM-Signature:" + s) + "\r\n";
    for (const auto& [n, v] : headers) msg += n + ":" + v + "\r\n";
    msg += "\r\n" + body;
    testing::write_file(d / "msg.eml", msg);
    std::string out;
    int rc = testing::run_command(
        {"/usr/bin/python3", std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py",
         "verify", (d / "msg.eml").string(), (*dir_ / "keys.txt").string()},
        &out);
    *ok = rc == 0;
    return out;
  }

  static TempDir* dir_;
  static int port_;
  static DkimService* service_;
  static std::thread* thread_;
  static std::string rsa_record_, ed_record_;
};

TempDir* DkimMilterTest::dir_ = nullptr;
int DkimMilterTest::port_ = 0;
DkimService* DkimMilterTest::service_ = nullptr;
std::thread* DkimMilterTest::thread_ = nullptr;
std::string DkimMilterTest::rsa_record_;
std::string DkimMilterTest::ed_record_;

const std::vector<std::pair<std::string, std::string>> kHeaders = {
    {"From", " Alice <alice@example.test>"},
    {"To", " bob@example.net"},
    {"Subject", " dual signed"},
    {"Date", " Sun, 22 Nov 2026 10:00:00 +0000"},
    {"Message-ID", " <dual@example.test>"}};
const std::string kBody = "Hello Bob.\r\n\r\nBye.\r\n";

TEST_F(DkimMilterTest, InternalMailIsDualSignedAndPythonVerifies) {
  auto r = testing::run_miltertest(
      script("127.0.0.1", "", kHeaders, "Hello Bob.\\r\\n\\r\\nBye.\\r\\n"), socket());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string s0 = between(r.output, "SIG0<<", ">>");
  std::string s1 = between(r.output, "SIG1<<", ">>");
  ASSERT_FALSE(s0.empty()) << r.output;
  ASSERT_FALSE(s1.empty()) << r.output;
  EXPECT_EQ(r.output.find("AR0<<"), std::string::npos) << "signing adds no A-R: " << r.output;
  bool ok = false;
  auto out = python_verify({s0, s1}, kHeaders, kBody, &ok);
  EXPECT_TRUE(ok) << out << "\n" << r.output;
  EXPECT_NE(out.find("sig 1: pass"), std::string::npos) << out;
  std::string both = s0 + s1;
  EXPECT_NE(both.find("a=rsa-sha256"), std::string::npos);
  EXPECT_NE(both.find("a=ed25519-sha256"), std::string::npos);
}

TEST_F(DkimMilterTest, AuthenticatedExternalClientIsSigned) {
  auto r = testing::run_miltertest(script("192.0.2.7", "alice", kHeaders, "Hi\\r\\n"), socket());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(between(r.output, "SIG0<<", ">>").empty()) << r.output;
}

TEST_F(DkimMilterTest, ExternalMailIsVerifiedIntoOneAuthResHeader) {
  // First sign internally, then feed the signed message in from outside.
  auto r = testing::run_miltertest(
      script("127.0.0.1", "", kHeaders, "Hello Bob.\\r\\n\\r\\nBye.\\r\\n"), socket());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string s0 = between(r.output, "SIG0<<", ">>");
  std::string s1 = between(r.output, "SIG1<<", ">>");
  auto lua_escape = [](const std::string& v) {
    std::string out;
    for (char c : v) {
      if (c == '\n')
        out += "\\n";
      else if (c == '\t')
        out += "\\t";
      else if (c == '"')
        out += "\\\"";
      else
        out += c;
    }
    return out;
  };
  std::vector<std::pair<std::string, std::string>> hs = {
      {"Authentication-Results", " mx.mxguard.test; dkim=pass header.d=example.test"},
      {"DKIM-Signature", lua_escape(s0)},
      {"DKIM-Signature", lua_escape(s1)}};
  for (const auto& h : kHeaders) hs.push_back(h);
  auto v = testing::run_miltertest(script("192.0.2.7", "", hs, "Hello Bob.\\r\\n\\r\\nBye.\\r\\n"),
                                   socket());
  ASSERT_EQ(v.exit_code, 0) << v.output;
  std::string ar = between(v.output, "AR0<<", ">>");
  EXPECT_NE(ar.find("mx.mxguard.test;"), std::string::npos) << ar;
  EXPECT_NE(ar.find("dkim=pass header.d=example.test header.i=@example.test header.s=rsa "
                    "header.a=rsa-sha256 header.b="),
            std::string::npos)
      << ar;
  EXPECT_NE(ar.find("header.s=ed header.a=ed25519-sha256"), std::string::npos) << ar;
  EXPECT_EQ(between(v.output, "AR1<<", ">>"), "") << "one A-R header only";
  EXPECT_NE(v.output.find("AR-DELETED"), std::string::npos) << "forged A-R removed: " << v.output;
}

// Issue 15, finding 4: mxguard-policyd's spf-header = authentication-results uses the same
// authserv-id and was deleted as forged. It is sealed now (for no queue id: policyd answers
// before Postfix may have one) and stays; an unsealed one, or one sealed under another
// secret, still goes. Our own header carries the seal for this message.
TEST_F(DkimMilterTest, SealedPolicydHeaderIsKeptAndOursIsSealed) {
  std::string policyd = common::authres::add_seal(
      " mx.mxguard.test; spf=pass smtp.mailfrom=example.test", kSecret, "");
  std::vector<std::pair<std::string, std::string>> hs = {{"Authentication-Results", policyd}};
  for (const auto& h : kHeaders) hs.push_back(h);
  auto v = testing::run_miltertest(script("192.0.2.7", "", hs, "x\\r\\n"), socket());
  ASSERT_EQ(v.exit_code, 0) << v.output;
  EXPECT_EQ(v.output.find("AR-DELETED"), std::string::npos) << v.output;
  std::string ar = between(v.output, "AR0<<", ">>");
  EXPECT_EQ(common::authres::check_seal(ar, kSecret, "4Xk2Qz1abc"),
            common::authres::SealCheck::kMessage)
      << ar;
  for (const std::string& bad :
       {std::string(" mx.mxguard.test; dkim=pass header.d=example.test"),
        common::authres::add_seal(" mx.mxguard.test; spf=pass", "another-secret-0123456789", "")}) {
    hs.push_back({"Authentication-Results", bad});
    v = testing::run_miltertest(script("192.0.2.7", "", hs, "x\\r\\n"), socket());
    ASSERT_EQ(v.exit_code, 0) << v.output;
    EXPECT_NE(v.output.find("AR-DELETED"), std::string::npos) << bad << "\n" << v.output;
    hs.pop_back();
  }
}

TEST_F(DkimMilterTest, UnsignedExternalMailGetsDkimNone) {
  auto v = testing::run_miltertest(script("192.0.2.7", "", kHeaders, "x\\r\\n"), socket());
  ASSERT_EQ(v.exit_code, 0) << v.output;
  std::string ar = between(v.output, "AR0<<", ">>");
  EXPECT_EQ(common::authres::strip_seal(ar),
            " mx.mxguard.test;\n\tdkim=none;\n\tarc=none smtp.remote-ip=192.0.2.7")
      << v.output;
  EXPECT_EQ(common::authres::check_seal(ar, kSecret, "4Xk2Qz1abc"),
            common::authres::SealCheck::kMessage)
      << ar;
  EXPECT_EQ(v.output.find("AR-DELETED"), std::string::npos);
}

TEST_F(DkimMilterTest, KeyLookupTimeoutIsTemperrorAndAccepted) {
  auto hs = kHeaders;
  hs.insert(hs.begin(), {"DKIM-Signature",
                         " v=1; a=rsa-sha256; c=relaxed/relaxed; d=slow.test; s=sel; "
                         "h=from; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=AAAA"});
  auto v = testing::run_miltertest(script("192.0.2.7", "", hs, "x\\r\\n"), socket());
  ASSERT_EQ(v.exit_code, 0) << v.output;
  std::string ar = between(v.output, "AR0<<", ">>");
  EXPECT_NE(ar.find("dkim=temperror reason=\"key lookup failed: timeout\" header.d=slow.test"),
            std::string::npos)
      << ar;
}

TEST_F(DkimMilterTest, InternalMailWithoutOurDomainIsNotSigned) {
  auto hs = kHeaders;
  hs[0] = {"From", " carol@elsewhere.test"};
  auto r = testing::run_miltertest(script("127.0.0.1", "", hs, "x\\r\\n"), socket());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(between(r.output, "SIG0<<", ">>"), "") << r.output;
}

TEST_F(DkimMilterTest, InternalMailWithoutOrWithSeveralFromIsAcceptedUnsignedAndLogged) {
  auto none = kHeaders;
  none.erase(none.begin());
  ::testing::internal::CaptureStderr();
  auto r = testing::run_miltertest(script("127.0.0.1", "", none, "x\\r\\n"), socket());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(between(r.output, "SIG0<<", ">>"), "") << r.output;
  auto several = kHeaders;
  several.push_back({"From", " mallory@example.test"});
  r = testing::run_miltertest(script("127.0.0.1", "", several, "x\\r\\n"), socket());
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(between(r.output, "SIG0<<", ">>"), "") << r.output;
  EXPECT_NE(log.find("mode=sign action=none reason=no-from"), std::string::npos) << log;
  EXPECT_NE(log.find("mode=sign action=none reason=several-from"), std::string::npos) << log;
}

}  // namespace
}  // namespace mxguard::milter::dkim
