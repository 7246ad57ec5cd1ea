// mxguard-dmarc's milter in-process, driven by miltertest, with policies served by a real DNS
// server on loopback and aggregates stored in a real Redis: p=reject/quarantine/none, sp=,
// np=, pct=, no record, broken and garbage records, DNS timeout and SERVFAIL, trusted and
// forged Authentication-Results, SPF alignment, bad From headers (none, empty, 50 addresses,
// 10 KB, invalid UTF-8, several domains), exceptions (trusted networks, never-reject-domains,
// monitor mode) and the aggregate rows each message leaves in Redis.
#include <gtest/gtest.h>

#include <thread>

#include "common/authres/seal.h"
#include "common/redis/pool.h"
#include "milters/dmarc/dmarc_milter.h"
#include "tests/fixtures/dns_server.h"
#include "tests/fixtures/miltertest.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::milter::dmarc {
namespace {

using testing::DnsServer;
using testing::RedisServer;

const char* kZone = R"($ORIGIN test.
$TTL 60
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
_dmarc.reject IN TXT "v=DMARC1; p=reject; rua=mailto:agg@reject.test"
reject IN TXT "v=spf1 ip4:127.0.0.5 -all"
reject IN A 127.0.0.9
_dmarc.quarantine IN TXT "v=DMARC1; p=quarantine"
_dmarc.none IN TXT "v=DMARC1; p=none; rua=mailto:agg@none.test"
_dmarc.parent IN TXT "v=DMARC1; p=none; sp=reject; np=quarantine"
sub.parent IN A 127.0.0.9
_dmarc.pct IN TXT "v=DMARC1; p=reject; pct=50"
_dmarc.broken IN TXT "v=DMARC1; p=bogus"
_dmarc.two IN TXT "v=DMARC1; p=reject"
_dmarc.two IN TXT "v=DMARC1; p=none"
_dmarc.garbage IN TXT "v=DMARC1; p=reject; adkim=?; pct=abc; ;; =; x"
_dmarc.notdmarc IN TXT "v=spf1 -all"
_dmarc.lists IN TXT "v=DMARC1; p=reject"
lists IN TXT "v=spf1 ip4:127.0.0.2 -all"
!timeout _dmarc.slow.test.
!servfail _dmarc.servfail.test.
)";

class DmarcMilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dns_ = new DnsServer(kZone);
    redis_ = new RedisServer();
    port_ = testing::free_tcp_port();
    service_ = new DmarcService(options());
    service_->set_random([] { return random_.load(); });
    service_->open();
    thread_ = new std::thread([] { service_->serve(); });
  }
  static void TearDownTestSuite() {
    service_->stop();
    thread_->join();
    delete thread_;
    delete service_;
    delete redis_;
    delete dns_;
  }
  void TearDown() override {
    service_->reload(options());  // every test starts from the defaults below
    random_ = 0;
  }
  // As the daemon reloads: validate() first (it parses the action options into enums).
  static void reload(const Options& o) {
    o.validate();
    service_->reload(o);
  }

  // The hop secret mxguard-dkim would share with us, and a header as it would seal it for
  // this message (queue id 4XdmarcQ1) or as mxguard-policyd seals its own (no queue id).
  static std::string secret_file() {
    static testing::TempDir* dir = new testing::TempDir();
    testing::write_file(*dir / "hop-secret", std::string(kSecret) + "\n");
    return (*dir / "hop-secret").string();
  }
  static std::string sealed(const std::string& value, const std::string& qid = "4XdmarcQ1") {
    return common::authres::add_seal(value, kSecret, qid);
  }
  static constexpr const char* kSecret = "dmarc-test-hop-secret-0123456789";

  static Options options() {
    Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(port_);
    o.authserv_id = "mx.mxguard.test";
    o.hop_secret_file = secret_file();
    o.dns.servers = {dns_->server_spec()};
    o.dns.timeout = std::chrono::milliseconds(700);
    o.redis.url = redis_->url();
    o.trusted_networks = {"127.0.0.1/32"};
    o.never_reject_domains = {"lists.test"};
    return o;
  }

  struct Message {
    std::string client = "127.0.0.2";
    std::string client_host = "mail.sender.example";
    std::string helo = "mail.sender.example";
    std::string mail_from = "bounce@elsewhere.example";
    std::string auth;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  static std::string lua_string(const std::string& v) {
    std::string out = "\"";
    for (unsigned char c : v) {
      if (c == '"' || c == '\\')
        out += '\\', out += static_cast<char>(c);
      else if (c == '\n')
        out += "\\n";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\t')
        out += "\\t";
      else if (c < 0x20 || c >= 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\%03u", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  }

  // Runs one message; returns miltertest's output with REPLY=, AR<n><<…>>, X-Spam, QUARANTINE
  // and CHANGED/INSERTED markers, then the daemon's log lines.
  static std::string run(const Message& m) {
    std::string s =
        "conn = mt.connect(\"${SOCKET}\", 20, 0.1)\n"
        "if conn == nil then error(\"connect failed\") end\n";
    s += "if mt.conninfo(conn, " + lua_string(m.client_host) + ", " + lua_string(m.client) +
         ") ~= nil then error(\"conninfo\") end\n";
    s += "if mt.helo(conn, " + lua_string(m.helo) + ") ~= nil then error(\"helo\") end\n";
    s += "mt.macro(conn, SMFIC_MAIL, \"i\", \"4XdmarcQ1\", \"{auth_authen}\", " +
         lua_string(m.auth) + ")\n";
    s += "if mt.mailfrom(conn, " + lua_string("<" + m.mail_from + ">") +
         ") ~= nil then error(\"mailfrom\") end\n";
    for (const auto& [n, v] : m.headers) {
      s += "if mt.header(conn, " + lua_string(n) + ", " + lua_string(v) +
           ") ~= nil then error(\"header\") end\n";
    }
    s += R"(mt.eoh(conn)
mt.eom(conn)
local r = mt.getreply(conn)
mt.echo("REPLY=" .. tostring(r))
if r == SMFIR_ACCEPT then mt.echo("ACCEPTED") end
if r == SMFIR_REPLYCODE then mt.echo("REPLYCODE") end
for i = 0, 3 do
  local a = mt.getheader(conn, "Authentication-Results", i)
  if a ~= nil then mt.echo("AR" .. i .. "<<" .. a .. ">>") end
end
local x = mt.getheader(conn, "X-Spam", 0)
if x ~= nil then mt.echo("XSPAM<<" .. x .. ">>") end
if mt.eom_check(conn, MT_QUARANTINE) then mt.echo("QUARANTINE") end
if mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results") then mt.echo("AR-CHANGED") end
if mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results") then mt.echo("AR-INSERTED") end
if mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") then mt.echo("AR-DELETED") end
mt.disconnect(conn)
)";
    // miltertest does not report the reply text of a REPLYCODE; the decision line (stderr,
    // one per message) says what we did.
    ::testing::internal::CaptureStderr();
    auto r = testing::run_miltertest(s, "inet:" + std::to_string(port_) + "@127.0.0.1");
    std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output + "LOG<<" + log + ">>";
  }

  static Message from(const std::string& value) {
    Message m;
    m.headers = {{"From", value}, {"Subject", "test"}};
    return m;
  }

  static std::atomic<int> random_;
  static DnsServer* dns_;
  static RedisServer* redis_;
  static int port_;
  static DmarcService* service_;
  static std::thread* thread_;
};

std::atomic<int> DmarcMilterTest::random_{0};
DnsServer* DmarcMilterTest::dns_ = nullptr;
RedisServer* DmarcMilterTest::redis_ = nullptr;
int DmarcMilterTest::port_ = 0;
DmarcService* DmarcMilterTest::service_ = nullptr;
std::thread* DmarcMilterTest::thread_ = nullptr;

bool has(const std::string& out, const std::string& needle) {
  return out.find(needle) != std::string::npos;
}

TEST_F(DmarcMilterTest, ForgedFromOfRejectDomainIsRejected) {
  std::string out = run(from(" CEO <ceo@reject.test>"));
  EXPECT_TRUE(has(out, "action=reject")) << out;
  EXPECT_FALSE(has(out, "ACCEPTED")) << out;
}

TEST_F(DmarcMilterTest, AlignedSpfPassesAndAddsOneHeader) {
  Message m = from("ceo@reject.test");
  m.client = "127.0.0.5";
  m.mail_from = "bounce@reject.test";
  std::string out = run(m);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "AR-INSERTED")) << out;
  EXPECT_TRUE(has(out, "spf=pass smtp.mailfrom=bounce@reject.test")) << out;
  EXPECT_TRUE(has(out, "dmarc=pass (p=reject dis=none) header.from=reject.test")) << out;
}

TEST_F(DmarcMilterTest, DkimResultFromOurHeaderAlignsAndIsExtended) {
  Message m = from("ceo@reject.test");
  m.headers.insert(m.headers.begin(),
                   {"Authentication-Results",
                    sealed(" mx.mxguard.test;\n\tdkim=pass header.d=reject.test header.s=s1")});
  std::string out = run(m);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "AR-CHANGED")) << out;
  EXPECT_FALSE(has(out, "AR-INSERTED")) << out;
  EXPECT_TRUE(has(out, "4XdmarcQ1: dmarc=pass")) << out;
  EXPECT_TRUE(has(out, "aligned=dkim")) << out;
}

// The trust rule (DESIGN §2): an A-R with our authserv-id is trusted only with mxguard-dkim's
// seal for this message; every other one came with the message.
TEST_F(DmarcMilterTest, ForgedHeaderBelowOursIsDeletedAndNotTrusted) {
  Message m = from("ceo@reject.test");
  m.headers.insert(m.headers.begin(),
                   {"Authentication-Results", sealed(" mx.mxguard.test; dkim=none")});
  m.headers.push_back(
      {"Authentication-Results", " mx.mxguard.test; dkim=pass header.d=reject.test; spf=pass"});
  std::string out = run(m);
  EXPECT_TRUE(has(out, "action=reject")) << out;

  // The same on a p=none domain, so the message is accepted: the forged header is deleted and
  // its dkim=pass is not what the evaluation used.
  Message none = from("ceo@none.test");
  none.headers.insert(none.headers.begin(),
                      {"Authentication-Results", sealed(" mx.mxguard.test; dkim=none")});
  none.headers.push_back(
      {"Authentication-Results", " mx.mxguard.test; dkim=pass header.d=none.test; spf=pass"});
  out = run(none);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "AR-DELETED")) << out;
  EXPECT_TRUE(has(out, "4XdmarcQ1: dmarc=fail")) << out;
}

// Issue 15, finding 4: with no mxguard-dkim before us, a sender's own "A-R: <our id>;
// dkim=pass header.d=reject.test" was the first header claiming our id and was believed:
// dmarc=pass. Now it is deleted and the forgery is rejected - also when it is the message's
// very first header, where an earlier milter's would be, and when it copies a seal made for
// another message.
TEST_F(DmarcMilterTest, ForgedHeaderAloneIsNotBelievedWithoutADkimMilter) {
  for (const std::string& value :
       {std::string(" mx.mxguard.test; dkim=pass header.d=reject.test; spf=pass"),
        sealed(" mx.mxguard.test; dkim=pass header.d=reject.test", "4XotherQ9")}) {
    Message m = from("ceo@reject.test");
    m.headers.insert(m.headers.begin(), {"Authentication-Results", value});
    std::string out = run(m);
    EXPECT_TRUE(has(out, "action=reject")) << value << "\n" << out;
    EXPECT_FALSE(has(out, "dmarc=pass")) << out;
  }
}

// Issue 15, finding 8: each deletion is one round trip with the MTA. 32 forged headers are
// deleted; 33 reject the message instead of buying a sender an unbounded number of them.
TEST_F(DmarcMilterTest, MoreForgedHeadersThanWeDeleteRejectTheMessage) {
  for (int n : {32, 33}) {
    Message m = from("ceo@none.test");
    for (int i = 0; i < n; ++i) {
      m.headers.push_back({"Authentication-Results",
                           " mx.mxguard.test; dkim=pass header.d=x" + std::to_string(i) + ".test"});
    }
    std::string out = run(m);
    if (n == 32) {
      EXPECT_TRUE(has(out, "ACCEPTED")) << out;
      EXPECT_TRUE(has(out, "forged_ar_removed=32")) << out;
    } else {
      EXPECT_TRUE(has(out, "reason=forged-authentication-results")) << out;
      EXPECT_TRUE(has(out, "forged_ar=33")) << out;
      EXPECT_FALSE(has(out, "ACCEPTED")) << out;
    }
  }
}

// mxguard-policyd's A-R (spf-header = authentication-results) carries a seal for no queue id:
// kept, not deleted, and not read for DKIM results; mxguard-dkim's (sealed for this message)
// is read and extended.
TEST_F(DmarcMilterTest, SealedHeadersOfThisHopAreKept) {
  Message m = from("ceo@reject.test");
  m.headers.insert(
      m.headers.begin(),
      {"Authentication-Results", sealed(" mx.mxguard.test; spf=pass smtp.mailfrom=x.test", "")});
  m.headers.insert(m.headers.begin(), {"Authentication-Results",
                                       sealed(" mx.mxguard.test; dkim=pass header.d=reject.test")});
  std::string out = run(m);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_FALSE(has(out, "AR-DELETED")) << out;
  EXPECT_TRUE(has(out, "dmarc=pass")) << out;
  EXPECT_FALSE(has(out, "mxguard-seal")) << "our rewritten header drops the seal: " << out;
  // A policyd-style seal (no queue id) is not a DKIM result DMARC may read.
  Message hop_only = from("ceo@reject.test");
  hop_only.headers.insert(
      hop_only.headers.begin(),
      {"Authentication-Results", sealed(" mx.mxguard.test; dkim=pass header.d=reject.test", "")});
  EXPECT_TRUE(has(run(hop_only), "action=reject"));
}

TEST_F(DmarcMilterTest, DkimPassOfAnotherDomainDoesNotAlign) {
  Message m = from("ceo@reject.test");
  m.headers.insert(m.headers.begin(), {"Authentication-Results",
                                       sealed(" mx.mxguard.test; dkim=pass header.d=evil.test")});
  EXPECT_TRUE(has(run(m), "action=reject"));
}

TEST_F(DmarcMilterTest, QuarantineHoldsOrMarks) {
  std::string out = run(from("a@quarantine.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "QUARANTINE")) << out;
  EXPECT_TRUE(has(out, "dmarc=fail (p=quarantine dis=quarantine)")) << out;
  Options o = options();
  o.quarantine_action = "header";
  reload(o);
  out = run(from("a@quarantine.test"));
  EXPECT_FALSE(has(out, "QUARANTINE")) << out;
  EXPECT_TRUE(has(out, "XSPAM<<Yes>>")) << out;
}

TEST_F(DmarcMilterTest, PolicyNoneOnlyMarks) {
  std::string out = run(from("a@none.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=fail (p=none dis=none) header.from=none.test")) << out;
}

TEST_F(DmarcMilterTest, SubdomainPolicyAndNonExistentSubdomains) {
  EXPECT_TRUE(has(run(from("a@sub.parent.test")), "action=reject"));  // sp=reject
  std::string out = run(from("a@ghost.parent.test"));                 // np=quarantine
  EXPECT_TRUE(has(out, "QUARANTINE")) << out;
  EXPECT_TRUE(has(run(from("a@parent.test")), "dmarc=fail (p=none dis=none)"));
}

TEST_F(DmarcMilterTest, PctSamplesOutToTheNextLowerPolicy) {
  random_ = 10;
  EXPECT_TRUE(has(run(from("a@pct.test")), "action=reject"));
  random_ = 75;
  std::string out = run(from("a@pct.test"));
  EXPECT_TRUE(has(out, "QUARANTINE")) << out;
  EXPECT_TRUE(has(out, "dmarc=fail (p=reject dis=quarantine)")) << out;
}

TEST_F(DmarcMilterTest, MissingBrokenAndGarbageRecords) {
  EXPECT_TRUE(has(run(from("a@norecord.test")), "dmarc=none header.from=norecord.test"));
  EXPECT_TRUE(has(run(from("a@notdmarc.test")), "dmarc=none"));
  std::string out = run(from("a@broken.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=permerror")) << out;
  out = run(from("a@two.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=permerror")) << out;
  // Invalid optional tags fall back to defaults; p=reject still applies.
  EXPECT_TRUE(has(run(from("a@garbage.test")), "action=reject"));
}

TEST_F(DmarcMilterTest, DnsFailuresAreTemperror) {
  auto t0 = std::chrono::steady_clock::now();
  std::string out = run(from("a@slow.test"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=temperror")) << out;
  EXPECT_TRUE(has(run(from("a@servfail.test")), "dmarc=temperror"));
  Options o = options();
  o.on_temperror = "tempfail";
  reload(o);
  EXPECT_TRUE(has(run(from("a@servfail.test")), "action=tempfail"));
}

TEST_F(DmarcMilterTest, BadFromHeaders) {
  Message none;
  none.headers = {{"Subject", "no from"}};
  EXPECT_TRUE(has(run(none), "action=reject"));
  EXPECT_TRUE(has(run(from("")), "action=reject"));
  // (A 10 KB From header is sent through Postfix in postfix_dmarc_test: miltertest itself
  // overflows a stack buffer on headers over 8 KB.)
  EXPECT_TRUE(has(run(from("a@\xff\xfe.test")), "action=reject"));
  EXPECT_TRUE(has(run(from("Undisclosed:;")), "action=reject"));
  // 50 addresses of one (aligned) domain are evaluated once.
  std::string fifty;
  for (int i = 0; i < 50; ++i) fifty += (i ? ", u" : "u") + std::to_string(i) + "@reject.test";
  Message m = from(fifty);
  m.client = "127.0.0.5";
  m.mail_from = "bounce@reject.test";
  std::string out = run(m);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=pass")) << out;
  // Accepting bad From headers is a choice.
  Options o = options();
  o.on_bad_from = "accept";
  reload(o);
  out = run(none);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=permerror")) << out;
}

TEST_F(DmarcMilterTest, SeveralFromDomains) {
  // CVE-2019-16378: the second address must not escape evaluation.
  EXPECT_TRUE(has(run(from("a@none.test, ceo@reject.test")), "action=reject"));
  Message two = from("a@none.test");
  two.headers.push_back({"From", "ceo@reject.test"});
  EXPECT_TRUE(has(run(two), "action=reject"));
  Options o = options();
  o.multi_from = "evaluate";
  reload(o);
  EXPECT_TRUE(has(run(from("a@none.test, ceo@reject.test")), "action=reject"));  // strictest wins
  std::string out = run(from("a@none.test, b@norecord.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
}

TEST_F(DmarcMilterTest, Exceptions) {
  Message trusted = from("ceo@reject.test");
  trusted.client = "127.0.0.1";
  std::string out = run(trusted);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_FALSE(has(out, "AR0<<")) << out;
  Message sasl = from("ceo@reject.test");
  sasl.auth = "alice";
  EXPECT_TRUE(has(run(sasl), "ACCEPTED"));
  // never-reject-domains: a list's envelope domain counts with an SPF pass (127.0.0.2 is in
  // lists.test's SPF record)...
  Message list = from("ceo@reject.test");
  list.mail_from = "owner-x@lists.test";
  out = run(list);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=fail (p=reject dis=none)")) << out;
  EXPECT_TRUE(has(out, "trusted_forwarder")) << out;
  // ...but not when any host writes it: the same envelope from outside that SPF record.
  Message forged = list;
  forged.client = "127.0.0.3";
  out = run(forged);
  EXPECT_TRUE(has(out, "action=reject")) << out;
  EXPECT_FALSE(has(out, "ACCEPTED")) << out;
  // A DKIM pass for the list's domain (in our A-R header) counts, a failed one does not.
  Message signed_by_list = forged;
  signed_by_list.headers.insert(
      signed_by_list.headers.begin(),
      {"Authentication-Results",
       sealed(" mx.mxguard.test; dkim=pass header.d=lists.test header.s=l")});
  out = run(signed_by_list);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "trusted_forwarder")) << out;
  Message bad_sig = forged;
  bad_sig.headers.insert(bad_sig.headers.begin(),
                         {"Authentication-Results",
                          sealed(" mx.mxguard.test; dkim=fail header.d=lists.test header.s=l")});
  EXPECT_TRUE(has(run(bad_sig), "action=reject"));
  // The client host name, as Postfix verified it.
  Message host = forged;
  host.client_host = "mx1.lists.test";
  out = run(host);
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "trusted_forwarder")) << out;
  Options o = options();
  o.enforce = false;
  reload(o);
  out = run(from("ceo@reject.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(out, "dmarc=fail (p=reject dis=none)")) << out;
}

TEST_F(DmarcMilterTest, AggregatesAreCountedInRedis) {
  common::redis::ClientOptions ro;
  ro.url = redis_->url();
  common::redis::Pool pool(ro);
  AggregateStore store(pool, std::chrono::hours(24), std::chrono::hours(24));
  auto count_rows = [&] {
    std::uint64_t n = 0;
    for (const auto& p : store.pending()) {
      if (p.domain != "none.test") continue;
      for (const auto& [row, c] : store.load(p).rows) n += c;
    }
    return n;
  };
  std::uint64_t before = count_rows();
  run(from("a@none.test"));
  run(from("b@none.test"));
  EXPECT_EQ(count_rows(), before + 2);
  auto pending = store.pending();
  auto it = std::find_if(pending.begin(), pending.end(),
                         [](const Period& p) { return p.domain == "none.test"; });
  ASSERT_NE(it, pending.end());
  PeriodData d = store.load(*it);
  EXPECT_EQ(d.published.p, "none");
  EXPECT_EQ(d.published.rua, "mailto:agg@none.test");
  ASSERT_FALSE(d.rows.empty());
  EXPECT_EQ(d.rows[0].first.source_ip, "127.0.0.2");
  EXPECT_EQ(d.rows[0].first.header_from, "none.test");
  // Every key has a TTL.
  auto keys = pool.command({"KEYS", "mxg:{dmarc}:*"});
  for (const auto& k : keys.as_array()) {
    EXPECT_GT(pool.command({"TTL", k.as_string()}).as_integer(), 0) << k.as_string();
  }
}

TEST_F(DmarcMilterTest, RedisDownNeverHoldsMailUp) {
  redis_->stop();
  std::string out = run(from("a@none.test"));
  EXPECT_TRUE(has(out, "ACCEPTED")) << out;
  EXPECT_TRUE(has(run(from("ceo@reject.test")), "action=reject"));
  redis_->start();
}

}  // namespace
}  // namespace mxguard::milter::dmarc
