// Selective greylisting (greylist-mode, DNSBL/DNSWL sites, trusted SPF-pass domains) in
// mxguard-policyd against a real DNS server on loopback and a real Redis: a listed client is
// deferred, an unlisted one with an SPF pass is not, a DNSWL listing skips greylisting, lists
// that SERVFAIL or time out fail open, IPv6 clients are looked up by nibbles, warm answers
// come from the resolver's cache, and the decision line names the reason.
#include <gtest/gtest.h>

#include <atomic>

#include "common/metrics/metrics.h"
#include "policyd/policy_service.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::policyd {
namespace {

using common::policy::Request;

const char* kGreylisted = "DEFER_IF_PERMIT Greylisted, please try again later";

std::string list_name(const char* client, const char* zone) {
  return DnsListSite::parse(zone).query_name(*common::net::IpAddress::parse(client));
}

// Clients: 198.51.100.10 listed on bl.test; .11 answered with an error code and .12 with an
// address outside 127.0.0.0/8 (neither is a listing); .20 on the allow list wl.test; .30 and
// .31 make broken.test SERVFAIL and slow.test stay silent; 2001:db8::10 is listed by nibbles.
std::string zone() {
  std::string z = R"(
$ORIGIN test.
$TTL 300
@                 IN SOA ns1 hostmaster 1 3600 600 86400 60
pass.example      IN TXT "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 -all"
soft.example      IN TXT "v=spf1 ~all"
bl                IN A   127.0.0.1
wl                IN A   127.0.0.1
)";
  z += list_name("198.51.100.10", "bl.test") + ". IN A 127.0.0.2\n";
  z += list_name("198.51.100.11", "bl.test") + ". IN A 127.255.255.254\n";
  z += list_name("198.51.100.12", "bl.test") + ". IN A 192.0.2.1\n";
  z += list_name("198.51.100.20", "wl.test") + ". IN A 127.0.10.2\n";
  z += list_name("2001:db8::10", "bl.test") + ". IN A 127.0.0.4\n";
  z += "!servfail " + list_name("198.51.100.30", "broken.test") + ".\n";
  z += "!timeout " + list_name("198.51.100.31", "slow.test") + ".\n";
  return z;
}

std::uint64_t counter(const std::string& series) {
  std::string text = common::metrics::Registry::global().render();
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stoull(text.substr(at + series.size() + 2));
}

class SelectiveGreylistTest : public ::testing::Test {
 protected:
  SelectiveGreylistTest() : dns_(zone()) {}

  Options options(const std::string& mode = "suspicious") {
    Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(testing::free_tcp_port());
    o.redis.url = redis_.url();
    o.checks = {"spf", "greylist"};
    o.dns.servers = {dns_.server_spec()};
    o.dns.timeout = std::chrono::seconds(1);
    o.spf.header = "none";
    o.spf.authserv_id = "mx.test";
    o.greylist.whitelist_clients.clear();
    o.greylist.whitelist_recipients.clear();
    o.greylist.hostname = "mx.test";
    o.selection.mode = mode;
    o.selection.dnsbl_sites = {DnsListSite::parse("bl.test=127.0.0.[2..11]")};
    o.selection.dnswl_sites = {DnsListSite::parse("wl.test")};
    return o;
  }

  std::unique_ptr<PolicyService> service(const Options& o) {
    return std::make_unique<PolicyService>(o, [this] { return now_.load(); });
  }

  static Request request(const std::string& ip, const std::string& sender,
                         const std::string& helo = "mail.example.test") {
    Request r;
    r.set("request", "smtpd_access_policy");
    r.set("protocol_state", "RCPT");
    r.set("client_address", ip);
    r.set("client_name", "unknown");
    r.set("helo_name", helo);
    r.set("sender", sender);
    r.set("recipient", "bob@rcpt.example");
    r.set("queue_id", "");
    r.set("instance", "i" + std::to_string(++instance_counter_));
    return r;
  }

  // The reply, and the decision line the request logged.
  std::pair<std::string, std::string> handle(PolicyService& svc, const Request& r) {
    ::testing::internal::CaptureStderr();
    std::string reply = svc.handle(r);
    std::string log = ::testing::internal::GetCapturedStderr();
    return {reply, log};
  }

  testing::DnsServer dns_;
  testing::RedisServer redis_;
  std::atomic<std::int64_t> now_{1'700'000'000};
  static inline int instance_counter_ = 0;
};

TEST_F(SelectiveGreylistTest, ListedClientIsDeferredEvenWithAnSpfPass) {
  auto svc = service(options());
  auto [reply, log] = handle(*svc, request("198.51.100.10", "a@pass.example.test"));
  EXPECT_EQ(reply, kGreylisted);
  EXPECT_NE(log.find("NOQUEUE: check=greylist result=greylist action=\"DEFER_IF_PERMIT"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("spf=\"helo=none mailfrom=pass\" greylist=applied reason=dnsbl:bl.test "
                     "detail=new age=0"),
            std::string::npos)
      << log;
  // The retry after the delay passes, as in plain greylisting.
  now_ += 301;
  EXPECT_EQ(
      svc->handle(request("198.51.100.10", "a@pass.example.test")).rfind("PREPEND X-Greylist", 0),
      0u);
}

TEST_F(SelectiveGreylistTest, UnlistedClientWithAnSpfPassIsNotGreylisted) {
  auto before = counter(
      "mxguard_policyd_greylist_selection_total{outcome=\"skipped\",reason=\"not-suspicious\"}");
  auto svc = service(options());
  auto [reply, log] = handle(*svc, request("198.51.100.7", "a@pass.example.test"));
  EXPECT_EQ(reply, "DUNNO");
  EXPECT_NE(log.find("check=greylist result=skipped action=DUNNO"), std::string::npos) << log;
  EXPECT_NE(log.find("greylist=skipped reason=not-suspicious age=-"), std::string::npos) << log;
  EXPECT_EQ(counter("mxguard_policyd_greylist_selection_total{outcome=\"skipped\",reason=\"not-"
                    "suspicious\"}"),
            before + 1);
  // An error code (127.255.255.254) and an answer outside 127.0.0.0/8 are not listings.
  EXPECT_EQ(svc->handle(request("198.51.100.11", "a@pass.example.test")), "DUNNO");
  EXPECT_EQ(svc->handle(request("198.51.100.12", "a@pass.example.test")), "DUNNO");
}

TEST_F(SelectiveGreylistTest, SpfSoftfailAndABadHeloAreSuspicious) {
  auto svc = service(options());
  auto [reply, log] = handle(*svc, request("198.51.100.7", "a@soft.example.test"));
  EXPECT_EQ(reply, kGreylisted);
  EXPECT_NE(log.find("greylist=applied reason=spf-softfail detail=new"), std::string::npos) << log;
  auto [reply2, log2] =
      handle(*svc, request("198.51.100.8", "a@pass.example.test", "[198.51.100.8]"));
  EXPECT_EQ(reply2, kGreylisted);
  EXPECT_NE(log2.find("reason=helo-not-fqdn"), std::string::npos) << log2;
}

TEST_F(SelectiveGreylistTest, DnswlListingSkipsGreylistingEvenInModeAll) {
  auto svc = service(options("all"));
  auto [reply, log] = handle(*svc, request("198.51.100.20", "a@soft.example.test"));
  EXPECT_EQ(reply, "DUNNO");
  EXPECT_NE(log.find("greylist=skipped reason=dnswl:wl.test"), std::string::npos) << log;
  // Everyone else is greylisted as before; a DNSBL is not even asked in mode all.
  auto [reply2, log2] = handle(*svc, request("198.51.100.7", "a@pass.example.test"));
  EXPECT_EQ(reply2, kGreylisted);
  EXPECT_NE(log2.find("greylist=applied reason=mode-all detail=new"), std::string::npos) << log2;
  EXPECT_EQ(dns_.queries_for(list_name("198.51.100.7", "bl.test") + "."), 0);
}

TEST_F(SelectiveGreylistTest, TrustedDomainWithAnSpfPassSkips) {
  auto o = options("all");
  o.selection.trust_spf_pass_domains = {"example.test"};
  auto svc = service(o);
  auto [reply, log] = handle(*svc, request("198.51.100.7", "a@pass.example.test"));
  EXPECT_EQ(reply, "DUNNO");
  EXPECT_NE(log.find("greylist=skipped reason=trusted-spf-pass:example.test"), std::string::npos)
      << log;
  EXPECT_EQ(svc->handle(request("198.51.100.7", "a@soft.example.test")), kGreylisted);
}

TEST_F(SelectiveGreylistTest, ListsThatServfailOrTimeOutFailOpen) {
  auto o = options();
  o.selection.dnsbl_sites = {DnsListSite::parse("broken.test"), DnsListSite::parse("slow.test"),
                             DnsListSite::parse("bl.test")};
  auto svc = service(o);
  std::string servfail =
      "mxguard_policyd_dns_list_errors_total{list=\"dnsbl\",zone=\"broken.test\",status="
      "\"servfail\"}";
  std::string timeout =
      "mxguard_policyd_dns_list_errors_total{list=\"dnsbl\",zone=\"slow.test\",status="
      "\"timeout\"}";
  auto servfails = counter(servfail);
  auto timeouts = counter(timeout);
  auto [reply, log] = handle(*svc, request("198.51.100.30", "a@pass.example.test"));
  EXPECT_EQ(reply, "DUNNO");
  EXPECT_NE(log.find("warning: NOQUEUE: dnsbl broken.test: lookup of " +
                     list_name("198.51.100.30", "broken.test") +
                     " failed (servfail): counted as not listed"),
            std::string::npos)
      << log;
  EXPECT_EQ(counter(servfail), servfails + 1);
  auto started = std::chrono::steady_clock::now();
  auto [reply2, log2] = handle(*svc, request("198.51.100.31", "a@pass.example.test"));
  EXPECT_EQ(reply2, "DUNNO");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  EXPECT_NE(log2.find("slow.test: lookup of"), std::string::npos) << log2;
  EXPECT_EQ(counter(timeout), timeouts + 1);
  // A failing list does not hide a listing on another.
  EXPECT_EQ(svc->handle(request("198.51.100.10", "a@pass.example.test")), kGreylisted);
}

TEST_F(SelectiveGreylistTest, Ipv6ClientsAreLookedUpByReversedNibbles) {
  auto svc = service(options());
  auto [reply, log] = handle(*svc, request("2001:db8::10", "a@pass.example.test"));
  EXPECT_EQ(reply, kGreylisted);
  EXPECT_NE(log.find("reason=dnsbl:bl.test"), std::string::npos) << log;
  EXPECT_EQ(svc->handle(request("2001:db8::11", "a@pass.example.test")), "DUNNO");
}

TEST_F(SelectiveGreylistTest, WarmAnswersComeFromTheResolversCache) {
  auto svc = service(options());
  std::string name = list_name("198.51.100.10", "bl.test") + ".";
  EXPECT_EQ(svc->handle(request("198.51.100.10", "a@pass.example.test")), kGreylisted);
  EXPECT_EQ(svc->handle(request("198.51.100.10", "c@pass.example.test")), kGreylisted);
  EXPECT_EQ(svc->handle(request("198.51.100.10", "d@pass.example.test")), kGreylisted);
  EXPECT_EQ(dns_.queries_for(name), 1);
  // NXDOMAIN answers are cached too (for the SOA's negative TTL).
  std::string clean = list_name("198.51.100.7", "bl.test") + ".";
  svc->handle(request("198.51.100.7", "a@pass.example.test"));
  svc->handle(request("198.51.100.7", "c@pass.example.test"));
  EXPECT_EQ(dns_.queries_for(clean), 1);
}

TEST_F(SelectiveGreylistTest, ModeNeverGreylistsNoOneAndAsksNoList) {
  auto svc = service(options("never"));
  auto [reply, log] = handle(*svc, request("198.51.100.10", "a@soft.example.test"));
  EXPECT_EQ(reply, "DUNNO");
  EXPECT_NE(log.find("greylist=skipped reason=mode-never"), std::string::npos) << log;
  EXPECT_EQ(dns_.queries_for(list_name("198.51.100.10", "bl.test") + "."), 0);
}

TEST_F(SelectiveGreylistTest, ModeAllWithoutAllowListsLogsAsBefore) {
  auto o = options("all");
  o.selection.dnswl_sites.clear();
  auto svc = service(o);
  auto [reply, log] = handle(*svc, request("198.51.100.10", "a@pass.example.test"));
  EXPECT_EQ(reply, kGreylisted);
  EXPECT_EQ(log.find("greylist="), std::string::npos) << log;
  EXPECT_NE(log.find("spf=\"helo=none mailfrom=pass\" reason=new age=0"), std::string::npos) << log;
  EXPECT_EQ(dns_.queries_for(list_name("198.51.100.10", "bl.test") + "."), 0);
}

// The real binary: a bad site or mode is a configuration error naming file:line (exit 78), an
// SPF condition without the spf check names the option, and --dump-config prints the sites.
TEST(SelectiveGreylistConfigTest, CheckConfigNamesFileAndLine) {
  const std::string binary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-policyd";
  testing::TempDir dir;
  auto conf = (dir.path() / "policyd.conf").string();
  const std::string base =
      "greylist-whitelist-clients = /dev/null\ngreylist-whitelist-recipients = /dev/null\n"
      "checks = spf, greylist\n";
  auto check = [&](const std::string& extra, std::string* out) {
    testing::write_file(conf, base + extra);
    return testing::run_command({binary, "-c", conf, "--check-config"}, out);
  };
  std::string out;
  EXPECT_EQ(check("greylist-mode = suspicious\ngreylist-dnsbl-sites = zen.example=127.0.0.[2..x]\n",
                  &out),
            78);
  EXPECT_NE(out.find(conf + ":5: greylist-dnsbl-sites: DNS list site 'zen.example=127.0.0.[2..x]'"),
            std::string::npos)
      << out;
  EXPECT_EQ(check("greylist-mode = sometimes\n", &out), 78);
  EXPECT_NE(out.find(conf + ":4"), std::string::npos) << out;
  EXPECT_NE(out.find("greylist-mode"), std::string::npos) << out;
  testing::write_file(conf,
                      "greylist-whitelist-clients = /dev/null\ngreylist-whitelist-recipients = "
                      "/dev/null\ngreylist-mode = suspicious\n");
  EXPECT_EQ(testing::run_command({binary, "-c", conf, "--check-config"}, &out), 78);
  EXPECT_NE(out.find("spf-fail needs checks = spf, greylist"), std::string::npos) << out;
  EXPECT_EQ(check("greylist-mode = suspicious\n"
                  "greylist-dnsbl-sites = zen.example=127.0.0.[2..11], bl.example\n"
                  "greylist-dnswl-sites = list.dnswl.example=127.0.[0..255].[1..3]\n",
                  &out),
            0)
      << out;
  EXPECT_EQ(testing::run_command({binary, "-c", conf, "--dump-config"}, &out), 0);
  EXPECT_NE(out.find("greylist-dnsbl-sites = zen.example=127.0.0.[2..11], bl.example\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("greylist-suspicious-when = dnsbl, spf-fail, spf-softfail, spf-none, "
                     "helo-not-fqdn\n"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace mxguard::policyd
