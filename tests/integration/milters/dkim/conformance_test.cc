// The Verifier against published vectors, with key records served by a real DNS server on
// loopback and looked up through common/dns: RFC 6376 and RFC 8463 examples, python3-dkim's
// (dkimpy) test messages, and tampered copies (body changed, signed header changed, key
// revoked, key record malformed, DNS timeout and SERVFAIL).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "common/dns/resolver.h"
#include "milters/dkim/key_lookup.h"
#include "milters/dkim/library.h"
#include "milters/dkim/verifier.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

const std::string kDir = std::string(MXGUARD_SOURCE_DIR) + "/tests/data/conformance/dkim/";

std::string key(const std::string& file) {
  std::string k = testing::read_file(kDir + file);
  while (!k.empty() && (k.back() == '\n' || k.back() == '\r')) k.pop_back();
  return k;
}

// A TXT rdata in zone-file form: strings of at most 255 bytes.
std::string txt(const std::string& record) {
  std::string out;
  for (std::size_t i = 0; i < record.size(); i += 200) {
    out += " \"" + record.substr(i, 200) + "\"";
  }
  return out;
}

std::string zone() {
  std::string z = "$TTL 60\n";
  auto add = [&](const std::string& name, const std::string& record) {
    z += name + " IN TXT" + txt(record) + "\n";
  };
  add("brisbane._domainkey.example.com.", key("rfc6376/brisbane._domainkey.example.com.txt"));
  add("brisbane._domainkey.football.example.com.",
      key("rfc8463/brisbane._domainkey.football.example.com.txt"));
  add("test._domainkey.football.example.com.",
      key("rfc8463/test._domainkey.football.example.com.txt"));
  add("sed._domainkey.test.ex.", key("dkimpy/eximtest.dns"));
  add("20120113._domainkey.gmail.com.", key("dkimpy/extracted-20120113._domainkey.gmail.com.txt"));
  // Tampered key records for football.example.com copies.
  add("revoked._domainkey.example.org.", "v=DKIM1; k=rsa; p=");
  add("malformed._domainkey.example.org.", "v=DKIM1; k=rsa; p=%%%not-base64%%%");
  z += "!timeout slow._domainkey.example.org.\n";
  z += "!servfail broken._domainkey.example.org.\n";
  return z;
}

// Splits a message file into header fields (folding kept, CRLF) and the body (CRLF).
void feed(Verifier& v, std::string raw) {
  std::string m;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) m += '\r';
    m += raw[i];
  }
  std::size_t pos = 0;
  std::string field;
  while (pos < m.size()) {
    auto eol = m.find("\r\n", pos);
    if (eol == std::string::npos) eol = m.size();
    std::string line = m.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !field.empty()) {
      field += "\r\n" + line;
      continue;
    }
    if (!field.empty()) v.header(field);
    field = line;
  }
  if (!field.empty()) v.header(field);
  v.end_of_headers();
  if (pos < m.size()) v.body(m.substr(pos));
}

class DkimConformanceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dns_ = new testing::DnsServer(zone());
    common::dns::ResolverOptions o;
    o.servers = {dns_->server_spec()};
    o.timeout = std::chrono::milliseconds(500);
    resolver_ = new common::dns::Resolver(o);
  }
  static void TearDownTestSuite() {
    delete resolver_;
    delete dns_;
  }

  std::vector<SignatureResult> verify(const std::string& message, VerifyOptions vo = {}) {
    Verifier v(
        lib_, [](const std::string& n) { return lookup_key_record(*resolver_, n); }, vo, "TEST");
    feed(v, message);
    return v.finish();
  }
  std::vector<SignatureResult> verify_file(const std::string& file) {
    return verify(testing::read_file(kDir + file));
  }

  Library lib_;
  static testing::DnsServer* dns_;
  static common::dns::Resolver* resolver_;
};

testing::DnsServer* DkimConformanceTest::dns_ = nullptr;
common::dns::Resolver* DkimConformanceTest::resolver_ = nullptr;

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

TEST_F(DkimConformanceTest, Rfc8463DualSignedExamplePasses) {
  auto r = verify_file("rfc8463/signed-message.eml");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  EXPECT_EQ(r[0].algorithm, "ed25519-sha256");
  EXPECT_EQ(r[0].selector, "brisbane");
  EXPECT_EQ(r[0].identity, "@football.example.com");
  EXPECT_EQ(r[0].b, "/gCrinpc");
  EXPECT_EQ(r[1].result, "pass") << r[1].reason;
  EXPECT_EQ(r[1].algorithm, "rsa-sha256");
  EXPECT_EQ(r[1].key_bits, 1024u);
}

TEST_F(DkimConformanceTest, Rfc6376ExamplePasses) {
  auto r = verify_file("rfc6376/signed-message.errata-corrected.eml");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  EXPECT_EQ(r[0].identity, "joe@football.example.com");
}

TEST_F(DkimConformanceTest, Rfc6376DoubleSpaceBodyFailsSimpleCanonicalization) {
  // The example as first published had two spaces in the body; with c=simple that changes the
  // body hash (RFC 6376 errata 3192).
  auto r = verify_file("rfc6376/signed-message.body-double-space.eml");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail");
}

TEST_F(DkimConformanceTest, DkimpyMessagesPass) {
  for (const char* f :
       {"dkimpy/rfc6376.signed.msg", "dkimpy/rfc6376.signed.rsa.msg", "dkimpy/ed25519test2.msg"}) {
    auto r = verify_file(f);
    ASSERT_FALSE(r.empty()) << f;
    EXPECT_EQ(r[0].result, "pass") << f << ": " << r[0].reason;
  }
}

TEST_F(DkimConformanceTest, TamperedCopiesFail) {
  std::string m = testing::read_file(kDir + "rfc8463/signed-message.eml");
  auto r = verify(replace(m, "We lost the game.", "We won the game."));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(r[0].reason, "body hash did not verify");
  EXPECT_EQ(r[1].result, "fail");
  r = verify(replace(m, "Subject: Is dinner ready?", "Subject: Is lunch ready?"));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(r[0].reason, "signature did not verify");
  EXPECT_EQ(r[1].result, "fail");
}

TEST_F(DkimConformanceTest, RevokedMalformedMissingAndUnreachableKeys) {
  std::string m = testing::read_file(kDir + "rfc8463/signed-message.eml");
  auto with = [&](const std::string& sel) {
    // The second (RSA) signature moves to example.org with selector `sel`.
    std::string t = replace(m, "s=test;", "s=" + sel + ";");
    const std::string ids = "d=football.example.com; i=@football.example.com;";
    auto second = t.find(ids, t.find("DKIM-Signature", 10));
    t.replace(second, ids.size(), "d=example.org; i=@example.org;");
    auto r = verify(t);
    EXPECT_EQ(r.size(), 2u) << sel;
    return r.size() == 2 ? r[1] : SignatureResult{};
  };
  auto r = with("revoked");
  EXPECT_EQ(r.result, "permerror");
  EXPECT_EQ(r.reason, "key revoked");
  r = with("malformed");
  EXPECT_EQ(r.result, "permerror") << r.reason;
  r = with("absent");
  EXPECT_EQ(r.result, "permerror");
  EXPECT_TRUE(r.key_not_found);
  r = with("slow");
  EXPECT_EQ(r.result, "temperror");
  EXPECT_EQ(r.reason, "key lookup failed: timeout");
  r = with("broken");
  EXPECT_EQ(r.result, "temperror");
  EXPECT_EQ(r.reason, "key lookup failed: servfail");
}

TEST_F(DkimConformanceTest, SmallKeysFailByPolicy) {
  VerifyOptions vo;
  vo.minimum_key_bits = 2048;  // the RFC 8463 RSA key has 1024 bits
  Library strict{LibraryOptions{{}, {}, std::chrono::seconds(0), 2048}};
  Verifier v(
      strict, [](const std::string& n) { return lookup_key_record(*resolver_, n); }, vo, "TEST");
  feed(v, testing::read_file(kDir + "rfc8463/signed-message.eml"));
  auto r = v.finish();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "pass");  // Ed25519 has no size policy
  EXPECT_EQ(r[1].result, "fail");
  EXPECT_NE(r[1].reason.find("key too small"), std::string::npos) << r[1].reason;
}

TEST_F(DkimConformanceTest, SignatureLimitIsHonoured) {
  VerifyOptions vo;
  vo.max_signatures = 1;
  auto r = verify(testing::read_file(kDir + "rfc8463/signed-message.eml"), vo);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass");
}

}  // namespace
}  // namespace mxguard::milter::dkim
