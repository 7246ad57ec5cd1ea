// The same policy requests against pypolicyd-spf (Debian postfix-policyd-spf-python, run as
// spawn(8) would, with pyspf's DNS pointed at our DNS fixture) and against mxguard-policyd
// with the equivalent options: the actions must agree — reject/defer with the same SMTP code,
// or accept with a Received-SPF header carrying the same result and identity. Texts differ by
// design (pypolicyd-spf links to a web page; we give the record's explanation): see below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <sstream>

#include "policyd/policy_service.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::policyd {
namespace {

const char* kZone = R"(
$ORIGIN example.test.
$TTL 60
@         IN SOA ns1 hostmaster 1 3600 600 86400 60
pass      IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
fail      IN TXT "v=spf1 -all"
soft      IN TXT "v=spf1 ~all"
neutral   IN TXT "v=spf1 ?all"
perm      IN TXT "v=spf1 include:nothing.example.test -all"
perm2     IN TXT "v=spf1 foo:bar -all"
exp       IN TXT "v=spf1 -all exp=why.example.test"
why       IN TXT "Not allowed: %{i}"
helofail  IN TXT "v=spf1 -all"
helopass  IN TXT "v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/24 -all"
!servfail temp.example.test.
)";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "reject 550", "defer 451", "dunno", or "prepend <result> <identity>".
std::string normalise(const std::string& action) {
  std::string a = lower(action);
  if (a.rfind("prepend received-spf: ", 0) == 0) {
    std::string rest = a.substr(22);
    std::string result = rest.substr(0, rest.find(' '));
    auto id = rest.find("identity=");
    std::string identity = id == std::string::npos ? "?" : rest.substr(id + 9);
    identity = identity.substr(0, identity.find(';'));
    return "prepend " + result + " " + identity;
  }
  if (!a.empty() && std::isdigit(static_cast<unsigned char>(a[0]))) {
    return std::string(a[0] == '5' ? "reject " : "defer ") + a.substr(0, 3);
  }
  if (a.rfind("defer_if_permit", 0) == 0) return "defer 450";
  if (a == "dunno") return "dunno";
  return "other: " + action;
}

TEST(PypolicydSpfDifferentialTest, SameRequestsSameActions) {
  if (!std::filesystem::exists("/usr/lib/python3/dist-packages/spf_engine")) {
    GTEST_SKIP() << "postfix-policyd-spf-python not installed";
  }
  testing::DnsServer dns(kZone);
  testing::RedisServer redis;
  testing::TempDir dir;
  testing::write_file(dir / "policyd-spf.conf",
                      "debugLevel = 0\nTestOnly = 1\nHELO_reject = Fail\n"
                      "Mail_From_reject = Fail\nPermError_reject = False\n"
                      "TempError_Defer = False\n"
                      "skip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1\n"
                      "Header_Type = SPF\nHide_Receiver = Yes\n");

  Options o;
  o.daemon.listen = "inet:127.0.0.1:" + std::to_string(testing::free_tcp_port());
  o.redis.url = redis.url();
  o.checks = {"spf"};
  o.dns.servers = {dns.server_spec()};
  o.greylist.whitelist_clients.clear();
  o.greylist.whitelist_recipients.clear();
  PolicyService svc(o);

  const std::vector<std::string> clients = {"198.51.100.7", "203.0.113.5", "127.0.0.1"};
  const std::vector<std::string> helos = {"helopass.example.test", "helofail.example.test",
                                          "nohelo.example.test", "[198.51.100.7]"};
  const std::vector<std::string> senders = {"a@pass.example.test", "a@fail.example.test",
                                            "a@soft.example.test", "a@neutral.example.test",
                                            "a@perm.example.test", "a@perm2.example.test",
                                            "a@exp.example.test",  "a@temp.example.test",
                                            "a@none.example.test", ""};

  std::string input;
  std::vector<std::map<std::string, std::string>> requests;
  int n = 0;
  for (const auto& c : clients) {
    for (const auto& h : helos) {
      for (const auto& s : senders) {
        std::map<std::string, std::string> r = {{"request", "smtpd_access_policy"},
                                                {"protocol_state", "RCPT"},
                                                {"protocol_name", "ESMTP"},
                                                {"client_address", c},
                                                {"client_name", "unknown"},
                                                {"helo_name", h},
                                                {"sender", s},
                                                {"recipient", "user@rcpt.example"},
                                                {"instance", "diff." + std::to_string(++n)}};
        for (const auto& [k, v] : r) input += k + "=" + v + "\n";
        input += "\n";
        requests.push_back(r);
      }
    }
  }
  testing::write_file(dir / "requests", input);
  std::string out;
  int rc = testing::run_command(
      {"/bin/sh", "-c",
       "/usr/bin/python3 " + std::string(MXGUARD_SOURCE_DIR) +
           "/tests/fixtures/pypolicyd_spf_driver.py --port " + std::to_string(dns.port()) +
           " --config " + (dir / "policyd-spf.conf").string() + " < " +
           (dir / "requests").string() + " 2>" + (dir / "stderr").string()},
      &out, std::chrono::seconds(240));
  ASSERT_EQ(rc, 0) << testing::read_file(dir / "stderr");
  std::vector<std::string> theirs;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("action=", 0) == 0) theirs.push_back(line.substr(7));
  }
  ASSERT_EQ(theirs.size(), requests.size()) << out;

  int same = 0;
  std::map<std::string, int> documented;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    common::policy::Request req;
    for (const auto& [k, v] : requests[i]) req.set(k, v);
    std::string ours = svc.handle(req);
    std::string a = normalise(ours), b = normalise(theirs[i]);
    if (a == b) {
      ++same;
      continue;
    }
    const auto& r = requests[i];
    // Differences by design, each asserted precisely (docs/mxguard-policyd.md lists them):
    // 1. Skipped (local) clients: pypolicyd-spf prepends "X-Comment: SPF check N/A for local
    //    connections"; we answer DUNNO and add nothing (a header that says nothing was checked
    //    is noise, and costs the message's one PREPEND slot).
    if (r.at("client_address") == "127.0.0.1" && a == "dunno" &&
        theirs[i].rfind("prepend X-Comment: SPF check N/A for local connections", 0) == 0) {
      ++documented["local client comment"];
      continue;
    }
    // 2. MAIL FROM has no SPF record but the HELO passes: pypolicyd-spf reports the HELO pass
    //    (identity=helo); we report the MAIL FROM identity's own result, "none". RFC 7208 §2.4
    //    makes MAIL FROM the identity checked for a non-null sender, and DMARC (RFC 7489 §4.1)
    //    aligns only that identity, so a HELO pass must not be read as an SPF pass.
    if (a == "prepend none mailfrom" && b == "prepend pass helo" &&
        r.at("helo_name") == "helopass.example.test" && r.at("sender") == "a@none.example.test") {
      ++documented["HELO pass reported for MAIL FROM none"];
      continue;
    }
    ADD_FAILURE() << "request " << i << " client=" << r.at("client_address")
                  << " helo=" << r.at("helo_name") << " sender=<" << r.at("sender") << ">\n"
                  << "  mxguard:       " << ours << "\n  pypolicyd-spf: " << theirs[i];
  }
  std::cout << "pypolicyd-spf differential: " << same << " of " << requests.size()
            << " requests give the same action\n";
  for (const auto& [what, count] : documented) {
    std::cout << "  documented difference: " << what << ": " << count << "\n";
  }
  EXPECT_EQ(same,
            78);  // 120 requests: 40 local (skipped) ones and 2 HELO-pass cases differ by design
  EXPECT_EQ(documented["local client comment"], 40);
}

}  // namespace
}  // namespace mxguard::policyd
