// DKIM key records: the tag-list parser (RFC 6376 §3.2, §3.6.1) and the judgement of a
// published selector against a private key, from DNS answers given as values (no resolver).
#include "milters/dkim/key_record.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "milters/dkim/keygen.h"

namespace mxguard::milter::dkim {
namespace {

using common::dns::Answer;
using common::dns::Status;

Answer txt(std::vector<std::string> records) { return {Status::kOk, std::move(records), 60}; }

// The PKCS#1 RSAPublicKey form of an RSA key's public half, base64: what some zones publish.
std::string pkcs1_p(const PrivateKey& key) {
  BIO* bio = BIO_new_mem_buf(key.pem.data(), static_cast<int>(key.pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  unsigned char* der = nullptr;
  int len = i2d_PublicKey(pkey, &der);
  std::string out = base64_encode(std::string_view(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  EVP_PKEY_free(pkey);
  return out;
}

class KeyRecordTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new PrivateKey(generate_key(KeyType::kRsa, 1024));
    ed_ = new PrivateKey(generate_key(KeyType::kEd25519, 0));
    other_ed_ = new PrivateKey(generate_key(KeyType::kEd25519, 0));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ed_;
    delete other_ed_;
  }
  static KeyCheck judge(const Answer& a, const PrivateKey& key) {
    return judge_key_record(a, "s._domainkey.example.test", key);
  }
  static PrivateKey* rsa_;
  static PrivateKey* ed_;
  static PrivateKey* other_ed_;
};
PrivateKey* KeyRecordTest::rsa_ = nullptr;
PrivateKey* KeyRecordTest::ed_ = nullptr;
PrivateKey* KeyRecordTest::other_ed_ = nullptr;

TEST(KeyRecordParseTest, ReadsTagsAndDefaults) {
  auto r = parse_key_record("v=DKIM1; k=ed25519; h=sha256; s=email:*; t=y:s; n=note; p=AAAA");
  ASSERT_TRUE(r.record) << r.error;
  EXPECT_TRUE(r.record->has_v);
  EXPECT_EQ(r.record->k, "ed25519");
  EXPECT_EQ(r.record->p, "AAAA");
  EXPECT_EQ(r.record->h, (std::vector<std::string>{"sha256"}));
  EXPECT_EQ(r.record->s, (std::vector<std::string>{"email", "*"}));
  EXPECT_EQ(r.record->t, (std::vector<std::string>{"y", "s"}));
  r = parse_key_record("p=AA AA\tAA ==;");  // folding white space inside p=, a trailing ";"
  ASSERT_TRUE(r.record) << r.error;
  EXPECT_EQ(r.record->k, "rsa");  // the default key type
  EXPECT_EQ(r.record->p, "AAAAAA==");
  r = parse_key_record(" ;p=; ;");
  ASSERT_TRUE(r.record) << r.error;
  EXPECT_TRUE(r.record->p.empty());  // revoked, but valid
}

TEST(KeyRecordParseTest, RefusesInvalidTagLists) {
  for (const char* bad : {
           "k=rsa",                       // no p=
           "p=AAAA; k=rsa; p=BBBB",       // duplicate tag
           "k=rsa; v=DKIM1; p=AAAA",      // v= not first
           "v=DKIM2; p=AAAA",             // wrong version
           "v=DKIM1; k=rsa; p=AA*A",      // not base64
           "v=DKIM1; p",                  // no '='
           "v=DKIM1; 1k=rsa; p=AAAA",     // tag name must start with a letter
           "v=DKIM1; k=r\x01sa; p=AAAA",  // control character in a value
       }) {
    auto r = parse_key_record(bad);
    EXPECT_FALSE(r.record) << bad;
    EXPECT_FALSE(r.error.empty()) << bad;
  }
}

TEST_F(KeyRecordTest, MatchesRsaAndEd25519AndBothRsaForms) {
  auto c = judge(txt({rsa_->public_record}), *rsa_);
  EXPECT_TRUE(c.ok()) << c.message;
  EXPECT_NE(c.message.find("matches the private key (rsa, 1024 bits)"), std::string::npos);
  EXPECT_EQ(c.published, (std::vector<std::string>{rsa_->public_record}));
  EXPECT_TRUE(judge(txt({ed_->public_record}), *ed_).ok());
  // Without v= and k= (both optional), and as a bare PKCS#1 RSAPublicKey.
  EXPECT_TRUE(judge(txt({"p=" + rsa_->public_p}), *rsa_).ok());
  EXPECT_TRUE(judge(txt({"v=DKIM1; k=rsa; p=" + pkcs1_p(*rsa_)}), *rsa_).ok());
}

TEST_F(KeyRecordTest, EachKindOfMismatchHasItsStatus) {
  EXPECT_EQ(judge({Status::kNxDomain, {}, 0}, *ed_).status, KeyStatus::kMissing);
  EXPECT_EQ(judge({Status::kNoData, {}, 0}, *ed_).status, KeyStatus::kMissing);
  EXPECT_EQ(judge({Status::kTimeout, {}, 0}, *ed_).status, KeyStatus::kDnsError);
  EXPECT_EQ(judge({Status::kServFail, {}, 0}, *ed_).status, KeyStatus::kDnsError);
  auto c = judge(txt({ed_->public_record, other_ed_->public_record}), *ed_);
  EXPECT_EQ(c.status, KeyStatus::kBadSyntax);
  EXPECT_NE(c.message.find("2 TXT records"), std::string::npos) << c.message;
  EXPECT_EQ(judge(txt({"v=DKIM1; k=ed25519"}), *ed_).status, KeyStatus::kBadSyntax);
  c = judge(txt({ed_->public_record}), *rsa_);
  EXPECT_EQ(c.status, KeyStatus::kWrongType);
  EXPECT_NE(c.message.find("k=ed25519 but the private key is rsa"), std::string::npos);
  EXPECT_EQ(judge(txt({"v=DKIM1; k=ed25519; p="}), *ed_).status, KeyStatus::kRevoked);
  EXPECT_EQ(judge(txt({other_ed_->public_record}), *ed_).status, KeyStatus::kWrongKey);
  EXPECT_EQ(judge(txt({"v=DKIM1; k=rsa; p=" + ed_->public_p}), *rsa_).status,
            KeyStatus::kWrongKey);  // not an RSA key at all
  EXPECT_EQ(judge(txt({"v=DKIM1; s=tlsrpt; " + ed_->public_record.substr(9)}), *ed_).status,
            KeyStatus::kUnusable);
  EXPECT_EQ(judge(txt({"v=DKIM1; h=sha1; k=rsa; p=" + rsa_->public_p}), *rsa_).status,
            KeyStatus::kUnusable);
  EXPECT_EQ(key_status_name(KeyStatus::kWrongKey), "wrong-key");
}

TEST_F(KeyRecordTest, TestingFlagIsAWarningNotAMismatch) {
  auto c = judge(txt({"v=DKIM1; k=ed25519; t=y; p=" + ed_->public_p}), *ed_);
  EXPECT_TRUE(c.ok());
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("t=y"), std::string::npos);
}

}  // namespace
}  // namespace mxguard::milter::dkim
