// A whole DKIM key rotation with the real binaries: mxguard-keygen rotate against a DnsServer
// whose zone changes between steps, and a running mxguard-dkim (signing, driven by miltertest)
// that the reload command signals. rotate → record not published → refused (also for a wrong
// record) → published → KeyTable switched, daemon reloaded and signing with the new selector,
// mxguard-dnscheck agreeing → grace → old selector listed for removal → removed from DNS →
// rotation done. Also: a table that would not load is never installed; usage errors; one run
// at a time.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "milters/dkim/keys.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"

namespace mxguard::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const std::string kKeygen = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-keygen";
const std::string kDkim = std::string(MXGUARD_BINARY_DIR) + "/milters/dkim/mxguard-dkim";
const std::string kDnscheck =
    std::string(MXGUARD_BINARY_DIR) + "/milters/dnscheck/mxguard-dnscheck";
const std::string kZoneHead =
    "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n";

class DkimRotateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directory(dir_ / "keys");
    std::string out;
    ASSERT_EQ(run_command({kKeygen, "--domain", "example.test", "--selector", "s1", "--type",
                           "ed25519", "--dir", keys()},
                          &out),
              0)
        << out;
    write_file(dir_ / "KeyTable", "# our keys\nmain example.test:s1:" + keys() + "/s1.private\n");
    write_file(dir_ / "SigningTable", "*@example.test main\n");
    port_ = free_tcp_port();
    write_file(dir_ / "dkim.conf",
               "listen = inet:127.0.0.1:" + std::to_string(port_) +
                   "\nkey-table = " + (dir_ / "KeyTable").string() +
                   "\nsigning-table = refile:" + (dir_ / "SigningTable").string() + "\n");
  }

  std::string keys() const { return (dir_ / "keys").string(); }

  // mxguard-keygen rotate with the test's files, DNS server and reload command.
  std::pair<int, std::string> rotate(const DnsServer& dns, std::vector<std::string> extra) {
    std::vector<std::string> argv{kKeygen,
                                  "rotate",
                                  "--dkim-config",
                                  (dir_ / "dkim.conf").string(),
                                  "--dns-servers",
                                  dns.server_spec(),
                                  "--dns-timeout",
                                  "2s",
                                  "--grace",
                                  "3s",
                                  "--reload-command",
                                  reload_command_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string out;
    int rc = run_command(argv, &out);
    return {rc, out};
  }

  // One message from the internal client through the running mxguard-dkim; returns its
  // DKIM-Signature header.
  std::string signature() {
    auto r = run_miltertest(R"(
conn = mt.connect("${SOCKET}", 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "localhost", "127.0.0.1") ~= nil then error("conninfo") end
if mt.mailfrom(conn, "<a@example.test>") ~= nil then error("mailfrom") end
mt.header(conn, "From", " a@example.test")
mt.header(conn, "Subject", " rotation")
mt.eoh(conn)
mt.bodystring(conn, "x\r\n")
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_ACCEPT then error("not accepted") end
local sig = mt.getheader(conn, "DKIM-Signature", 0)
if sig == nil then error("not signed") end
print("SIGNATURE: " .. sig)
mt.disconnect(conn)
)",
                            "inet:" + std::to_string(port_) + "@127.0.0.1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }

  std::string zone_with(const std::vector<std::string>& selectors) {
    std::string zone = kZoneHead;
    for (const auto& s : selectors) zone += read_file(dir_ / "keys" / (s + ".txt"));
    return zone;
  }

  TempDir dir_;
  int port_ = 0;
  std::string reload_command_;
};

TEST_F(DkimRotateTest, WholeRotation) {
  Process daemon(
      {kDkim, "--foreground", "--log-target", "stderr", "-c", (dir_ / "dkim.conf").string()},
      dir_ / "dkim.log");
  ASSERT_TRUE(wait_for_tcp("127.0.0.1", port_, 10s)) << daemon.log();
  // The reload as the packaged unit does it (SIGUSR1: libmilter owns SIGHUP), counted in a file.
  reload_command_ = "kill -USR1 " + std::to_string(daemon.pid()) + " && echo reload >> " +
                    (dir_ / "reloads").string();
  EXPECT_THAT(signature(), HasSubstr("s=s1;"));
  std::string table_before = read_file(dir_ / "KeyTable");

  // 1. A new key under the next selector; its record printed; signing unchanged.
  DnsServer only_old(zone_with({"s1"}));
  auto [rc, out] = rotate(only_old, {"--domain", "example.test"});
  ASSERT_EQ(rc, 0) << out;
  auto s2 = milter::dkim::load_private_key(keys() + "/s2.private");
  EXPECT_THAT(out, HasSubstr("publish at s2._domainkey.example.test (TXT):\n" + s2.public_record));
  EXPECT_THAT(out, HasSubstr("s2._domainkey\tIN\tTXT\t( \"" + s2.public_record));
  EXPECT_THAT(read_file(dir_ / "KeyTable.rotation"),
              HasSubstr("key=main state=pending domain=example.test old=s1"));
  EXPECT_EQ(read_file(dir_ / "KeyTable"), table_before);

  // 2. Not published: refused, nothing switched, no reload.
  std::tie(rc, out) = rotate(only_old, {"--commit"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("not switching to s2: s2._domainkey.example.test: no TXT record"));
  EXPECT_EQ(read_file(dir_ / "KeyTable"), table_before);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "reloads"));
  //    Published, but another key: refused as well (the judge mxguard-dnscheck uses).
  auto s1 = milter::dkim::load_private_key(keys() + "/s1.private");
  DnsServer wrong(zone_with({"s1"}) + "s2._domainkey IN TXT \"" + s1.public_record + "\"\n");
  std::tie(rc, out) = rotate(wrong, {"--commit"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("not switching to s2: s2._domainkey.example.test: p= does not match"));
  EXPECT_EQ(read_file(dir_ / "KeyTable"), table_before);
  EXPECT_THAT(signature(), HasSubstr("s=s1;"));

  // 3. Published: the KeyTable line switches (the comment stays), the daemon reloads and signs
  //    with s2; mxguard-dnscheck sees the same record as good.
  DnsServer both(zone_with({"s1", "s2"}));
  std::tie(rc, out) = rotate(both, {"--commit"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("signs example.test with s2 (was s1)"));
  EXPECT_THAT(out, HasSubstr("reloaded (kill -USR1"));
  EXPECT_EQ(read_file(dir_ / "KeyTable"),
            "# our keys\nmain example.test:s2:" + keys() + "/s2.private\n");
  EXPECT_EQ(read_file(dir_ / "reloads"), "reload\n");
  for (int i = 0; i < 50 && daemon.log().find("reload: done") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_THAT(daemon.log(), HasSubstr("reload: done"));
  EXPECT_THAT(signature(), HasSubstr("s=s2;"));
  std::string check;
  EXPECT_EQ(run_command({kDnscheck, "--dkim-config", (dir_ / "dkim.conf").string(), "--dns-servers",
                         both.server_spec(), "--json", "example.test"},
                        &check),
            1)  // SPF, DMARC and MX are not in this zone
      << check;
  bool seen = false;
  auto report = nlohmann::json::parse(check);
  for (const auto& c : report["checks"]) {
    if (c["type"] != "dkim") continue;
    seen = true;
    EXPECT_EQ(c["name"], "s2._domainkey.example.test");
    EXPECT_EQ(c["status"], "ok") << check;
  }
  EXPECT_TRUE(seen) << check;

  // 4. Within the grace period: the old selector stays; a second run changes nothing.
  std::tie(rc, out) = rotate(both, {"--commit"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("signing with s2; s1._domainkey.example.test stays published until"));
  EXPECT_EQ(read_file(dir_ / "reloads"), "reload\n");

  // 5. Grace over: the old selector is listed for removal, every run, while DNS has it.
  std::this_thread::sleep_for(3100ms);
  std::tie(rc, out) = rotate(both, {"--commit"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("remove: s1._domainkey.example.test TXT"));
  EXPECT_THAT(read_file(dir_ / "KeyTable.rotation"), HasSubstr("state=retired"));
  std::tie(rc, out) = rotate(both, {"--commit"});
  EXPECT_THAT(out, HasSubstr("remove: s1._domainkey.example.test TXT"));

  // 6. Removed from DNS: the rotation is over; the old key file is left to the admin.
  DnsServer only_new(zone_with({"s2"}));
  std::tie(rc, out) = rotate(only_new, {"--commit"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("s1._domainkey.example.test is gone from DNS; rotation done"));
  EXPECT_THAT(read_file(dir_ / "KeyTable.rotation"), Not(HasSubstr("key=")));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "keys" / "s1.private"));
  std::tie(rc, out) = rotate(only_new, {"--commit"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("no rotation in progress"));
  EXPECT_EQ(daemon.stop(SIGTERM, 8s), 0) << daemon.log();
}

TEST_F(DkimRotateTest, ATableThatWouldNotLoadIsNeverInstalled) {
  reload_command_ = "echo reload >> " + (dir_ / "reloads").string();
  DnsServer none(kZoneHead);
  auto [rc, out] = rotate(none, {"--domain", "example.test", "--new-selector", "next"});
  ASSERT_EQ(rc, 0) << out;
  DnsServer published(zone_with({"s1", "next"}));
  // Someone broke the SigningTable meanwhile: the switched table would not load.
  write_file(dir_ / "SigningTable", "*@example.test main\n*@other.test gone\n");
  std::string table_before = read_file(dir_ / "KeyTable");
  std::tie(rc, out) = rotate(published, {"--commit"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("key name 'gone' is not in the key table"));
  EXPECT_EQ(read_file(dir_ / "KeyTable"), table_before);
  EXPECT_THAT(read_file(dir_ / "KeyTable.rotation"), HasSubstr("state=pending"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "reloads"));
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_NE(e.path().filename().string().front(), '.') << e.path();  // no temp file left
  }
  // Repaired: the same run switches.
  write_file(dir_ / "SigningTable", "*@example.test main\n");
  std::tie(rc, out) = rotate(published, {"--commit"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(read_file(dir_ / "KeyTable"), HasSubstr("main example.test:next:"));
}

TEST_F(DkimRotateTest, UsageErrors) {
  DnsServer none(kZoneHead);
  auto [rc, out] = rotate(none, {});
  EXPECT_EQ(rc, 64) << out;  // neither --domain nor --commit
  std::tie(rc, out) = rotate(none, {"--domain", "other.test"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("signs for other.test"));
  write_file(dir_ / "simple.conf",
             "domain = example.test\nselector = s1\nkey-file = " + keys() + "/s1.private\n");
  std::string o;
  EXPECT_EQ(run_command({kKeygen, "rotate", "--dkim-config", (dir_ / "simple.conf").string(),
                         "--domain", "example.test"},
                        &o),
            78)
      << o;
  EXPECT_THAT(o, HasSubstr("names no key-table"));
  EXPECT_EQ(run_command({kKeygen, "rotate", "--new-selector", "bad/name", "--domain", "x"}, &o), 78)
      << o;
  // One run at a time: a second one while the directory is locked stops at once.
  int fd = ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  std::tie(rc, out) = rotate(none, {"--commit"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_THAT(out, HasSubstr("another mxguard-keygen rotate is running"));
  ::close(fd);
  std::tie(rc, out) = rotate(none, {"--commit"});
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace mxguard::testing
