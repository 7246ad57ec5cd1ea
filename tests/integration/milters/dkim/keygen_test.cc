// mxguard-keygen end to end: generated RSA and Ed25519 keys (mode 0600), the SELECTOR.txt zone
// snippet served unchanged by a real DNS server, and `mxguard-keygen test` accepting the
// matching record and refusing a wrong or revoked one.
#include "milters/dkim/keygen.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>

#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::dkim {
namespace {

const std::string kKeygen = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-keygen";

TEST(DkimKeygenTest, RsaAndEd25519KeysMatchTheirPublishedRecords) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(testing::run_command({kKeygen, "--domain", "example.test", "--selector", "rsa1",
                                  "--bits", "2048", "--dir", dir.path().string()},
                                 &out),
            0)
      << out;
  EXPECT_NE(out.find("v=DKIM1; k=rsa; p=MIIB"), std::string::npos) << out;
  ASSERT_EQ(testing::run_command({kKeygen, "--domain", "example.test", "--selector", "ed1",
                                  "--type", "ed25519", "--dir", dir.path().string()},
                                 &out),
            0)
      << out;
  struct stat st {};
  ASSERT_EQ(::stat((dir / "rsa1.private").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "ed1.private").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Never overwrite a key.
  EXPECT_NE(testing::run_command({kKeygen, "--domain", "example.test", "--selector", "ed1",
                                  "--type", "ed25519", "--dir", dir.path().string()},
                                 &out),
            0);

  std::string rsa_txt = testing::read_file(dir / "rsa1.txt");
  // A 2048-bit record is ~410 bytes: two character-strings.
  EXPECT_EQ(std::count(rsa_txt.begin(), rsa_txt.end(), '"'), 4) << rsa_txt;
  auto wrong = load_private_key((dir / "ed1.private").string());
  testing::DnsServer dns(
      "$ORIGIN example.test.\n$TTL 60\n"
      "@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n" +
      rsa_txt + testing::read_file(dir / "ed1.txt") + "wrong._domainkey IN TXT \"" +
      wrong.public_record +
      "\"\n"
      "revoked._domainkey IN TXT \"v=DKIM1; k=ed25519; p=\"\n");
  auto test = [&](const std::string& selector, const std::string& key) {
    std::string o;
    int rc = testing::run_command(
        {kKeygen, "test", "--domain", "example.test", "--selector", selector, "--key-file",
         (dir / key).string(), "--dns-servers", dns.server_spec(), "--dns-timeout", "2s"},
        &o);
    return std::make_pair(rc, o);
  };
  auto [rc, o] = test("rsa1", "rsa1.private");
  EXPECT_EQ(rc, 0) << o << dns.log();
  EXPECT_NE(o.find("matches the private key (rsa, 2048 bits)"), std::string::npos) << o;
  std::tie(rc, o) = test("ed1", "ed1.private");
  EXPECT_EQ(rc, 0) << o;
  std::tie(rc, o) = test("ed1", "rsa1.private");
  EXPECT_EQ(rc, 1) << o;
  EXPECT_NE(o.find("k=ed25519 but the private key is rsa"), std::string::npos) << o;
  std::tie(rc, o) = test("wrong", "rsa1.private");
  EXPECT_EQ(rc, 1) << o;
  std::tie(rc, o) = test("revoked", "ed1.private");
  EXPECT_EQ(rc, 1) << o;
  EXPECT_NE(o.find("revoked"), std::string::npos) << o;
  std::tie(rc, o) = test("absent", "ed1.private");
  EXPECT_EQ(rc, 1) << o;
  EXPECT_NE(o.find("nxdomain"), std::string::npos) << o;
}

TEST(DkimKeygenTest, PrivateKeyIsGivenToTheDaemonUser) {
  testing::TempDir dir;
  passwd* pw = ::getpwnam("nobody");
  if (pw == nullptr) GTEST_SKIP() << "no user nobody";
  std::string out;
  ASSERT_EQ(testing::run_command({kKeygen, "--domain", "example.test", "--selector", "k", "--type",
                                  "ed25519", "--user", "nobody", "--dir", dir.path().string()},
                                 &out),
            0)
      << out;
  struct stat st {};
  ASSERT_EQ(::stat((dir / "k.private").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, pw->pw_uid);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(testing::run_command({kKeygen, "--domain", "example.test", "--selector", "k2", "--user",
                                  "no-such-user-here", "--dir", dir.path().string()},
                                 &out),
            0);
}

TEST(DkimKeygenTest, TxtStringsAreAtMost255Bytes) {
  auto key = generate_key(KeyType::kRsa, 4096);
  auto parts = split_txt(key.public_record);
  ASSERT_GT(parts.size(), 2u);
  std::string joined;
  for (const auto& p : parts) {
    EXPECT_LE(p.size(), 255u);
    joined += p;
  }
  EXPECT_EQ(joined, key.public_record);
  std::string zone = zone_record("s", "example.test", key.public_record);
  EXPECT_EQ(zone.rfind("s._domainkey\tIN\tTXT\t( \"v=DKIM1; k=rsa; p=", 0), 0u) << zone;
}

}  // namespace
}  // namespace mxguard::milter::dkim
