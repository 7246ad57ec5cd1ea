// End to end through a private Postfix with the real mxguard-dkim binary: internal mail from
// 127.0.0.1 is delivered dual-signed (RSA + Ed25519) and python3-dkim verifies both
// signatures; external mail from 127.0.0.2 signed by python3-dkim gets our A-R dkim=pass
// (keys from a real DNS server); a forged A-R claiming our authserv-id is removed.
// Must never touch the system Postfix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;

const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-dkim";
const std::string kKeygen = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-keygen";
const std::string kTool = std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py";

std::string one_line_record(const std::string& keygen_output) {
  auto p = keygen_output.find("v=DKIM1");
  return keygen_output.substr(p, keygen_output.find('\n', p) - p);
}

class PostfixDkimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PostfixInstance::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    std::string out;
    ASSERT_EQ(run_command({kKeygen, "--domain", "example.test", "--selector", "rsa", "--dir",
                           dir_.path().string()},
                          &out),
              0)
        << out;
    rsa_record_ = one_line_record(out);
    ASSERT_EQ(run_command({kKeygen, "--domain", "example.test", "--selector", "ed", "--type",
                           "ed25519", "--dir", dir_.path().string()},
                          &out),
              0)
        << out;
    ed_record_ = one_line_record(out);
    // A remote domain signs with its own key, published in DNS.
    ASSERT_EQ(run_command({kKeygen, "--domain", "remote.test", "--selector", "r1", "--dir",
                           (dir_.path()).string()},
                          &out),
              0)
        << out;
    remote_record_ = one_line_record(out);
    write_file(dir_ / "keys.txt", "rsa._domainkey.example.test " + rsa_record_ +
                                      "\ned._domainkey.example.test " + ed_record_ +
                                      "\nr1._domainkey.remote.test " + remote_record_ + "\n");
    auto txt = [](const std::string& name, const std::string& record) {
      std::string out = name + " IN TXT";
      for (std::size_t i = 0; i < record.size(); i += 200)
        out += " \"" + record.substr(i, 200) + "\"";
      return out + "\n";
    };
    dns_ = std::make_unique<DnsServer>(
        "$ORIGIN test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n" +
        txt("r1._domainkey.remote", remote_record_) + txt("rsa._domainkey.example", rsa_record_) +
        txt("ed._domainkey.example", ed_record_));
    port_ = free_tcp_port();
    write_file(dir_ / "dkim.conf", "listen = inet:127.0.0.1:" + std::to_string(port_) + "\n" +
                                       "dns-servers = " + dns_->server_spec() + "\n" +
                                       "dns-timeout = 2s\n"
                                       "authserv-id = mx.mxguard.test\n"
                                       "domain = example.test\n"
                                       "selector = rsa, ed\n"
                                       "key-file = " +
                                       (dir_ / "rsa.private").string() + ", " +
                                       (dir_ / "ed.private").string() + "\n" +
                                       "internal-hosts = 127.0.0.1\n");
    dkim_ = Process(
        {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "dkim.conf").string()},
        dir_ / "dkim.log");
    ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, seconds(10))) << dkim_.log();
    PostfixInstance::Options o;
    o.smtpd_milters = "inet:127.0.0.1:" + std::to_string(port_);
    o.listen_addresses = {"127.0.0.1", "127.0.0.2"};
    postfix_ = std::make_unique<PostfixInstance>(o);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- mxguard-dkim log:\n" << read_file(dir_ / "dkim.log");
      if (postfix_) std::cerr << "--- Postfix maillog:\n" << postfix_->maillog();
    }
  }

  std::optional<DeliveredMessage> delivered_with(const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      for (auto& m : postfix_->delivered()) {
        if (m.raw.find(needle) != std::string::npos) return m;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }

  std::pair<int, std::string> python_verify(const std::string& raw) {
    TempDir d;
    write_file(d / "msg.eml", raw);
    std::string out;
    int rc = run_command({"/usr/bin/python3", kTool, "verify", (d / "msg.eml").string(),
                          (dir_ / "keys.txt").string()},
                         &out);
    return {rc, out};
  }

  TempDir dir_;
  std::string rsa_record_, ed_record_, remote_record_;
  std::unique_ptr<DnsServer> dns_;
  int port_ = 0;
  Process dkim_;
  std::unique_ptr<PostfixInstance> postfix_;
};

TEST_F(PostfixDkimTest, InternalMailIsDeliveredDualSignedAndPythonVerifies) {
  SwaksOptions m;
  m.from = "alice@example.test";
  m.to = {"bob@elsewhere.test"};
  m.headers = {"From: Alice <alice@example.test>", "Subject: internal e2e"};
  m.body = "Signed by mxguard-dkim.\nSecond line.";
  SwaksResult r = postfix_->send(m);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("internal e2e");
  ASSERT_TRUE(d) << postfix_->maillog();
  auto sigs = d->header("DKIM-Signature");
  ASSERT_EQ(sigs.size(), 2u) << d->headers();
  auto [rc, out] = python_verify(d->raw);
  EXPECT_EQ(rc, 0) << out << "\n" << d->raw;
  EXPECT_THAT(out, HasSubstr("sig 0: pass"));
  EXPECT_THAT(out, HasSubstr("sig 1: pass"));
  EXPECT_TRUE(d->header("Authentication-Results").empty()) << d->headers();
  EXPECT_THAT(read_file(dir_ / "dkim.log"), HasSubstr(r.queue_id + ": mode=sign action=signed"));
}

TEST_F(PostfixDkimTest, ExternalMailSignedByPythonGetsDkimPass) {
  std::string msg =
      "From: Rita <rita@remote.test>\r\nTo: bob@example.test\r\nSubject: external e2e\r\n"
      "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <e2e@remote.test>\r\n\r\n"
      "Hello from outside.\r\n";
  write_file(dir_ / "unsigned.eml", msg);
  std::string signed_msg;
  ASSERT_EQ(run_command({"/usr/bin/python3", kTool, "sign", (dir_ / "unsigned.eml").string(),
                         (dir_ / "r1.private").string(), "r1", "remote.test", "rsa"},
                        &signed_msg),
            0)
      << signed_msg;
  // A forged result claiming our authserv-id, and a foreign one that must stay.
  SwaksOptions m;
  m.from = "rita@remote.test";
  m.to = {"bob@example.test"};
  m.local_interface = "127.0.0.2";
  m.data =
      "Authentication-Results: mx.mxguard.test; dkim=pass header.d=forged.test\r\n"
      "Authentication-Results: other.example; dkim=pass\r\n" +
      signed_msg;
  SwaksResult r = postfix_->send(m);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("external e2e");
  ASSERT_TRUE(d) << postfix_->maillog();
  auto ars = d->header("Authentication-Results");
  ASSERT_EQ(ars.size(), 2u) << d->headers();
  std::string ours;
  for (const auto& a : ars) {
    if (a.find("mx.mxguard.test") != std::string::npos) ours = a;
  }
  EXPECT_THAT(ours, HasSubstr("dkim=pass header.d=remote.test"));
  EXPECT_THAT(ours, HasSubstr("header.s=r1 header.a=rsa-sha256 header.b="));
  EXPECT_EQ(d->raw.find("forged.test"), std::string::npos) << d->headers();
  EXPECT_THAT(d->headers(), HasSubstr("other.example; dkim=pass"));
  EXPECT_TRUE(d->header("DKIM-Signature").size() == 1u) << "not re-signed";
}

TEST_F(PostfixDkimTest, HeaderAddedByALaterMilterKeepsTheSignatureValid) {
  // A second mxguard-dkim after ours plays the later milter (as mxguard-av will): it treats
  // every client as external, so it verifies what the first one signed and adds its own A-R.
  int port2 = free_tcp_port();
  write_file(dir_ / "later.conf", "listen = inet:127.0.0.1:" + std::to_string(port2) + "\n" +
                                      "dns-servers = " + dns_->server_spec() + "\n" +
                                      "authserv-id = later.mxguard.test\n"
                                      "internal-hosts = 192.0.2.254\n");
  Process later(
      {kBinary, "--foreground", "--log-target", "stderr", "-c", (dir_ / "later.conf").string()},
      dir_ / "later.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port2, seconds(10))) << later.log();
  postfix_->postconf("smtpd_milters", "inet:127.0.0.1:" + std::to_string(port_) +
                                          ", inet:127.0.0.1:" + std::to_string(port2));
  postfix_->reload();
  SwaksOptions m;
  m.from = "alice@example.test";
  m.to = {"bob@elsewhere.test"};
  m.headers = {"From: Alice <alice@example.test>", "Subject: two milters"};
  SwaksResult r = postfix_->send(m);
  ASSERT_EQ(r.data_code, 250) << r.transcript;
  auto d = delivered_with("two milters");
  ASSERT_TRUE(d) << postfix_->maillog();
  auto ars = d->header("Authentication-Results");
  ASSERT_EQ(ars.size(), 1u) << d->headers();
  // Postfix hands our DKIM-Signatures on to the later milter, which verifies them; the A-R it
  // adds after signing must not break them.
  EXPECT_THAT(ars[0], HasSubstr("later.mxguard.test;\tdkim=pass header.d=example.test"));
  EXPECT_EQ(ars[0].find("dkim=fail"), std::string::npos) << ars[0];
  EXPECT_EQ(d->header("DKIM-Signature").size(), 2u) << d->headers();
  auto [rc, out] = python_verify(d->raw);
  EXPECT_EQ(rc, 0) << out << "\n" << d->raw;
  if (HasFailure()) std::cerr << "--- later milter log:\n" << later.log();
}

}  // namespace
}  // namespace mxguard::testing
