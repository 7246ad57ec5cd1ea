// Signer and Verifier together without libmilter: RSA, Ed25519 and dual signatures made by
// milters/dkim/signer.cc verify with our Verifier and with python3-dkim (an independent
// implementation); tampering is detected.
#include "milters/dkim/signer.h"

#include <gtest/gtest.h>

#include <map>

#include "milters/dkim/key_cache.h"
#include "milters/dkim/verifier.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

using testing::TempDir;

struct Message {
  std::vector<std::pair<std::string, std::string>> headers;  // name, raw value (leading space)
  std::string body;                                          // CRLF
};

Message sample() {
  return {{{"From", " Alice <alice@example.test>"},
           {"To", " bob@example.net"},
           {"Subject", " hello\n\tfolded"},
           {"Date", " Sun, 22 Nov 2026 10:00:00 +0000"},
           {"Message-ID", " <1@example.test>"}},
          "Hello Bob.\r\n\r\nBye.\r\n"};
}

std::string wire(const Message& m, const std::vector<std::string>& sigs) {
  std::string out;
  for (const auto& s : sigs) {
    std::string v = s;
    std::string crlf;
    for (char c : v) {
      if (c == '\n') crlf += '\r';
      crlf += c;
    }
    out += "DKIM-Signature: " + crlf + "\r\n";
  }
  for (const auto& [n, v] : m.headers) {
    std::string crlf;
    for (char c : v) {
      if (c == '\n') crlf += '\r';
      crlf += c;
    }
    out += n + ":" + crlf + "\r\n";
  }
  return out + "\r\n" + m.body;
}

class DkimSignerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                                    "rsa_keygen_bits:2048", "-out", (*dir_ / "rsa.pem").string()}),
              0);
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out",
                                    (*dir_ / "ed.pem").string()}),
              0);
    rsa_ = new PrivateKey(load_private_key((*dir_ / "rsa.pem").string()));
    ed_ = new PrivateKey(load_private_key((*dir_ / "ed.pem").string()));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ed_;
    delete dir_;
  }

  std::vector<SigningKey> keys(bool rsa, bool ed) {
    std::vector<SigningKey> k;
    if (rsa) k.push_back({"example.test", "rsa", "rsa.pem", std::make_shared<PrivateKey>(*rsa_)});
    if (ed) k.push_back({"example.test", "ed", "ed.pem", std::make_shared<PrivateKey>(*ed_)});
    return k;
  }

  std::vector<std::string> sign(const Message& m, std::vector<SigningKey> k) {
    Signer s(lib_, std::move(k), "TEST");
    for (const auto& [n, v] : m.headers) s.header(header_field(n, v));
    s.end_of_headers();
    // Odd chunk sizes: the MTA splits bodies anywhere.
    for (std::size_t i = 0; i < m.body.size(); i += 7) s.body(m.body.substr(i, 7));
    return s.finish();
  }

  std::vector<SignatureResult> verify(const Message& m, const std::vector<std::string>& sigs,
                                      std::map<std::string, std::string> records = {}) {
    if (records.empty()) {
      records["rsa._domainkey.example.test"] = rsa_->public_record;
      records["ed._domainkey.example.test"] = ed_->public_record;
    }
    KeyLookup lookup = [records](const std::string& name) {
      auto it = records.find(name);
      if (it == records.end()) return KeyLookupResult{KeyLookupResult::Kind::kNotFound, "", "nx"};
      return KeyLookupResult{KeyLookupResult::Kind::kFound, it->second, "ok"};
    };
    Verifier v(lib_, lookup, {}, "TEST");
    for (const auto& s : sigs) v.header(header_field("DKIM-Signature", " " + s));
    for (const auto& [n, val] : m.headers) v.header(header_field(n, val));
    v.end_of_headers();
    v.body(m.body);
    return v.finish();
  }

  // Runs python3-dkim on the assembled message; returns its output, *ok = exit code 0.
  std::string python_verify(const Message& m, const std::vector<std::string>& sigs, bool* ok) {
    TempDir d;
    testing::write_file(d / "msg.eml", wire(m, sigs));
    testing::write_file(d / "keys.txt", "rsa._domainkey.example.test " + rsa_->public_record +
                                            "\ned._domainkey.example.test " + ed_->public_record +
                                            "\n");
    std::string out;
    int rc = testing::run_command(
        {"/usr/bin/python3", std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py",
         "verify", (d / "msg.eml").string(), (d / "keys.txt").string()},
        &out);
    *ok = rc == 0;
    return out;
  }

  Library lib_{LibraryOptions{{}, {"from", "to", "subject", "date", "message-id"}}};
  static TempDir* dir_;
  static PrivateKey* rsa_;
  static PrivateKey* ed_;
};

TempDir* DkimSignerTest::dir_ = nullptr;
PrivateKey* DkimSignerTest::rsa_ = nullptr;
PrivateKey* DkimSignerTest::ed_ = nullptr;

TEST_F(DkimSignerTest, RsaSignatureVerifiesWithUsAndPython) {
  auto m = sample();
  unsigned long hits = parsed_key_hits();
  auto sigs = sign(m, keys(true, false));
  EXPECT_EQ(parsed_key_hits(), hits + 1) << "libopendkim reused the key parsed at load time";
  ASSERT_EQ(sigs.size(), 1u);
  EXPECT_NE(sigs[0].find("a=rsa-sha256"), std::string::npos) << sigs[0];
  EXPECT_NE(sigs[0].find("c=relaxed/relaxed"), std::string::npos) << sigs[0];
  EXPECT_EQ(sigs[0].find("l="), std::string::npos) << sigs[0];
  auto r = verify(m, sigs);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  EXPECT_EQ(r[0].domain, "example.test");
  EXPECT_EQ(r[0].selector, "rsa");
  EXPECT_EQ(r[0].algorithm, "rsa-sha256");
  EXPECT_EQ(r[0].b.size(), 8u);
  bool ok = false;
  auto out = python_verify(m, sigs, &ok);
  EXPECT_TRUE(ok) << out;
}

TEST_F(DkimSignerTest, RsaPublicKeyIsDecodedOnceAndOnlyForItsOwnBytes) {
  auto m = sample();
  auto sigs = sign(m, keys(true, false));
  auto r = verify(m, sigs);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  unsigned long hits = public_key_hits();
  r = verify(m, sigs);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  EXPECT_EQ(public_key_hits(), hits + 1) << "the second message reused the decoded key";

  // The cached key still checks the signature: a changed signed header fails.
  auto hdr = m;
  hdr.headers[2].second = " changed subject";
  r = verify(hdr, sigs);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(public_key_hits(), hits + 2);

  // Another key published under the same name is decoded for itself and does not verify.
  TempDir d;
  ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                                  "rsa_keygen_bits:2048", "-out", (d / "other.pem").string()}),
            0);
  PrivateKey other = load_private_key((d / "other.pem").string());
  r = verify(m, sigs, {{"rsa._domainkey.example.test", other.public_record}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail") << r[0].reason;
  EXPECT_EQ(public_key_hits(), hits + 2) << "different bytes never come from the cache";
}

TEST_F(DkimSignerTest, Ed25519SignatureVerifiesWithUsAndPython) {
  auto m = sample();
  auto sigs = sign(m, keys(false, true));
  ASSERT_EQ(sigs.size(), 1u);
  EXPECT_NE(sigs[0].find("a=ed25519-sha256"), std::string::npos) << sigs[0];
  auto r = verify(m, sigs);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  bool ok = false;
  auto out = python_verify(m, sigs, &ok);
  EXPECT_TRUE(ok) << out;
}

TEST_F(DkimSignerTest, DualSignatureBothVerify) {
  auto m = sample();
  auto sigs = sign(m, keys(true, true));
  ASSERT_EQ(sigs.size(), 2u);
  auto r = verify(m, sigs);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  EXPECT_EQ(r[1].result, "pass") << r[1].reason;
  bool ok = false;
  auto out = python_verify(m, sigs, &ok);
  EXPECT_TRUE(ok) << out;
  EXPECT_NE(out.find("sig 1: pass"), std::string::npos) << out;
}

TEST_F(DkimSignerTest, OversignedFromBlocksAnAddedFrom) {
  auto m = sample();
  auto sigs = sign(m, keys(true, false));
  EXPECT_NE(sigs[0].find("Message-ID:from:"), std::string::npos) << sigs[0];  // oversigned
  m.headers.push_back({"From", " mallory@evil.test"});
  auto r = verify(m, sigs);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail");
}

TEST_F(DkimSignerTest, TamperedBodyAndHeaderFail) {
  auto m = sample();
  auto sigs = sign(m, keys(true, true));
  auto body = m;
  body.body += "P.S. send money\r\n";
  auto r = verify(body, sigs);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(r[0].reason, "body hash did not verify");
  auto hdr = m;
  hdr.headers[2].second = " changed subject";
  r = verify(hdr, sigs);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(r[1].result, "fail");
}

TEST_F(DkimSignerTest, RevokedMissingAndMalformedKeys) {
  auto m = sample();
  auto sigs = sign(m, keys(true, false));
  auto r = verify(m, sigs, {{"rsa._domainkey.example.test", "v=DKIM1; k=rsa; p="}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "permerror");
  EXPECT_EQ(r[0].reason, "key revoked");
  r = verify(m, sigs, {{"other._domainkey.example.test", "v=DKIM1; p=x"}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "permerror");
  EXPECT_TRUE(r[0].key_not_found);
  r = verify(m, sigs, {{"rsa._domainkey.example.test", "v=DKIM1; k=rsa; p=!!notbase64"}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "permerror") << r[0].reason;
}

TEST_F(DkimSignerTest, DnsTimeoutIsTemperror) {
  auto m = sample();
  auto sigs = sign(m, keys(true, false));
  KeyLookup lookup = [](const std::string&) {
    return KeyLookupResult{KeyLookupResult::Kind::kTempError, "", "timeout"};
  };
  Verifier v(lib_, lookup, {}, "TEST");
  v.header(header_field("DKIM-Signature", " " + sigs[0]));
  for (const auto& [n, val] : m.headers) v.header(header_field(n, val));
  v.end_of_headers();
  v.body(m.body);
  auto r = v.finish();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "temperror");
  EXPECT_TRUE(r[0].dns_error);
  EXPECT_EQ(r[0].reason, "key lookup failed: timeout");
}

TEST_F(DkimSignerTest, RsaSha1FailsUnlessAllowed) {
  TempDir d;
  testing::write_file(d / "msg.eml", wire(sample(), {}));
  std::string signed_msg;
  ASSERT_EQ(testing::run_command({"/usr/bin/python3",
                                  std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py",
                                  "sign", (d / "msg.eml").string(), (*dir_ / "rsa.pem").string(),
                                  "rsa", "example.test", "rsa-sha1"},
                                 &signed_msg),
            0)
      << signed_msg;
  ASSERT_EQ(signed_msg.rfind("DKIM-Signature:", 0), 0u) << signed_msg;
  std::string sig = signed_msg.substr(15, signed_msg.find("\r\nFrom:") - 15);
  auto run = [&](bool allow) {
    KeyLookup lookup = [](const std::string&) {
      return KeyLookupResult{KeyLookupResult::Kind::kFound, rsa_->public_record, "ok"};
    };
    VerifyOptions vo;
    vo.allow_sha1 = allow;
    Verifier v(lib_, lookup, vo, "TEST");
    v.header("DKIM-Signature:" + sig);
    for (const auto& [n, val] : sample().headers) v.header(header_field(n, val));
    v.end_of_headers();
    v.body(sample().body);
    return v.finish();
  };
  auto r = run(false);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(r[0].reason, "rsa-sha1 not accepted (RFC 8301)");
  r = run(true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  EXPECT_EQ(r[0].algorithm, "rsa-sha1");
}

TEST_F(DkimSignerTest, UnsignedMessageHasNoResults) {
  auto m = sample();
  EXPECT_TRUE(verify(m, {}).empty());
  EXPECT_EQ(authentication_results("mx.test", {}), "mx.test;\n\tdkim=none");
}

}  // namespace
}  // namespace mxguard::milter::dkim
