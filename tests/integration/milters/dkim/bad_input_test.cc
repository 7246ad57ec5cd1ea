// Bad input for the Signer and Verifier: no From, several From, malformed and duplicate
// DKIM-Signature tags, 100 signatures, a 100 KB header line, bare-LF line ends, 8-bit headers,
// and a 50 MB body with bounded memory. Never a crash, always a defined result.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "milters/dkim/signer.h"
#include "milters/dkim/verifier.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

class DkimBadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { key_ = new PrivateKey(generate_for_test()); }
  static void TearDownTestSuite() { delete key_; }
  static PrivateKey generate_for_test() {
    testing::TempDir d;
    EXPECT_EQ(testing::run_command(
                  {"openssl", "genpkey", "-algorithm", "ed25519", "-out", (d / "k.pem").string()}),
              0);
    return load_private_key((d / "k.pem").string());
  }

  std::vector<std::string> sign(const Headers& hs, const std::string& body) {
    Signer s(lib_, {{"example.test", "ed", "k", std::make_shared<PrivateKey>(*key_)}}, "T");
    for (const auto& [n, v] : hs) s.header(header_field(n, v));
    s.end_of_headers();
    s.body(body);
    return s.finish();
  }

  std::vector<SignatureResult> verify(const Headers& hs, const std::string& body,
                                      unsigned* ignored = nullptr) {
    std::string record = key_->public_record;
    Verifier v(
        lib_,
        [record](const std::string& name) {
          if (name == "ed._domainkey.example.test") {
            return KeyLookupResult{KeyLookupResult::Kind::kFound, record, "ok"};
          }
          return KeyLookupResult{KeyLookupResult::Kind::kNotFound, "", "nxdomain"};
        },
        {}, "T");
    for (const auto& [n, val] : hs) v.header(header_field(n, val));
    v.end_of_headers();
    v.body(body);
    auto r = v.finish();
    if (ignored) *ignored = v.ignored();
    return r;
  }

  Headers signed_headers(const Headers& hs, const std::string& body) {
    Headers out;
    for (const auto& s : sign(hs, body)) out.push_back({"DKIM-Signature", " " + s});
    out.insert(out.end(), hs.begin(), hs.end());
    return out;
  }

  Library lib_{LibraryOptions{{}, {"from", "subject"}}};
  static PrivateKey* key_;
};
PrivateKey* DkimBadInputTest::key_ = nullptr;

const Headers kBase = {{"From", " a@example.test"}, {"To", " b@example.net"}, {"Subject", " s"}};

TEST_F(DkimBadInputTest, NoFromNeverPasses) {
  auto hs = signed_headers(kBase, "x\r\n");
  hs.erase(hs.begin() + 1);  // drop From after signing
  auto r = verify(hs, "x\r\n");
  ASSERT_EQ(r.size(), 1u);
  // libopendkim verifies anyway; the signed From is missing, so the signature fails.
  EXPECT_TRUE(r[0].result == "fail" || r[0].result == "permerror") << r[0].result;
  // Unsigned and without From: simply no signature.
  EXPECT_TRUE(verify({{"Subject", " s"}}, "x\r\n").empty());
}

TEST_F(DkimBadInputTest, SeveralFromHeaders) {
  auto hs = signed_headers(kBase, "x\r\n");
  hs.push_back({"From", " evil@attacker.test"});
  auto r = verify(hs, "x\r\n");
  ASSERT_EQ(r.size(), 1u);
  // From is oversigned: a second From breaks the signature.
  EXPECT_NE(r[0].result, "pass");
}

TEST_F(DkimBadInputTest, MalformedAndDuplicateTags) {
  for (const std::string sig :
       {" v=1; v=1; a=ed25519-sha256; d=example.test; s=ed; h=from; bh=AAAA; b=AAAA",
        " v=1; a=ed25519-sha256; d=example.test; s=ed; h=from; bh=AAAA; b=",
        " garbage without tags", " v=2; a=rsa-sha256; d=example.test; s=ed; h=from; bh=AA; b=AA",
        " v=1; a=rsa-md5; d=example.test; s=ed; h=from; bh=AA; b=AA", " ",
        " v=1; a=ed25519-sha256; d=; s=; h=; bh=; b="}) {
    Headers hs{{"DKIM-Signature", sig}};
    hs.insert(hs.end(), kBase.begin(), kBase.end());
    auto r = verify(hs, "x\r\n");
    ASSERT_LE(r.size(), 1u) << sig;
    if (!r.empty()) {
      EXPECT_NE(r[0].result, "pass") << sig;
    }
  }
}

TEST_F(DkimBadInputTest, HundredSignaturesOnlyTheLimitIsVerified) {
  auto hs = signed_headers(kBase, "x\r\n");
  Headers many;
  for (int i = 0; i < 100; ++i) many.push_back(hs[0]);
  many.insert(many.end(), kBase.begin(), kBase.end());
  auto start = std::chrono::steady_clock::now();
  unsigned ignored = 0;
  auto r = verify(many, "x\r\n", &ignored);
  EXPECT_EQ(r.size(), 5u);
  EXPECT_EQ(ignored, 95u);
  for (const auto& x : r) EXPECT_EQ(x.result, "pass") << x.reason;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(DkimBadInputTest, HundredKilobyteHeaderLine) {
  Headers hs = kBase;
  hs.push_back({"X-Long", " " + std::string(100 * 1024, 'a')});
  auto sh = signed_headers(hs, "x\r\n");
  auto r = verify(sh, "x\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
}

TEST_F(DkimBadInputTest, BareLfBodyIsCanonicalizedAsCrlf) {
  auto hs = signed_headers(kBase, "line one\nline two\n");
  auto r = verify(hs, "line one\r\nline two\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  // Bare LF in a folded header value as well.
  Headers folded = kBase;
  folded[2] = {"Subject", " first\n second"};
  auto fh = signed_headers(folded, "x\r\n");
  fh[3].second = " first\r\n second";
  r = verify(fh, "x\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
}

TEST_F(DkimBadInputTest, EightBitHeaders) {
  Headers hs = kBase;
  hs[2] = {"Subject",
           " Gr\xc3\xbc\xc3\x9f"
           "e \xff\xfe raw"};
  auto sh = signed_headers(hs, "x\r\n");
  auto r = verify(sh, "x\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
}

TEST_F(DkimBadInputTest, NulBytesAndEmptyFieldsNeverReachLibopendkim) {
  // Both crashed libopendkim (heap overflow, assertion) before Verifier/Signer cut fields at
  // NUL and skipped empty ones (found by fuzz_dkim_verify).
  auto hs = signed_headers(kBase, "x\r\n");
  hs.push_back({"Received", std::string(" from a\0b by c", 14)});
  hs.push_back({std::string("\0", 1), " x"});
  auto r = verify(hs, "x\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  Signer s(lib_, {{"example.test", "ed", "k", std::make_shared<PrivateKey>(*key_)}}, "T");
  s.header(std::string("\0From: a@example.test", 22));
  s.header(header_field("From", " a@example.test"));
  s.end_of_headers();
  s.body(std::string("nul \0 in body\r\n", 15));
  EXPECT_EQ(s.finish().size(), 1u);
}

TEST_F(DkimBadInputTest, FiftyMegabyteBodyKeepsMemoryBounded) {
  std::string chunk;
  for (int i = 0; chunk.size() < 64 * 1024; ++i)
    chunk += "line " + std::to_string(i) + " of a big body\r\n";
  const std::size_t total = 50u << 20;
  long before = rss_kb();
  Signer s(lib_, {{"example.test", "ed", "k", std::make_shared<PrivateKey>(*key_)}}, "T");
  for (const auto& [n, v] : kBase) s.header(header_field(n, v));
  s.end_of_headers();
  std::string record = key_->public_record;
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) s.body(chunk);
  auto sigs = s.finish();
  long after_sign = rss_kb();
  Verifier v(
      lib_,
      [record](const std::string&) {
        return KeyLookupResult{KeyLookupResult::Kind::kFound, record, "ok"};
      },
      {}, "T");
  v.header(header_field("DKIM-Signature", " " + sigs[0]));
  for (const auto& [n, val] : kBase) v.header(header_field(n, val));
  v.end_of_headers();
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) v.body(chunk);
  auto r = v.finish();
  long after_verify = rss_kb();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "pass") << r[0].reason;
  std::cout << "RSS before " << before << " kB, after signing 50 MB " << after_sign
            << " kB, after verifying " << after_verify << " kB\n";
  EXPECT_LT(after_sign - before, 8 * 1024);
  EXPECT_LT(after_verify - before, 8 * 1024);
}

}  // namespace
}  // namespace mxguard::milter::dkim
