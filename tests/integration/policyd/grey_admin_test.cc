// mxguard-grey against a real Redis, with triplets written by the daemon's own decision path
// (PolicyService::handle with an injected clock): list and its filters, show, delete, the admin
// whitelist as the daemon honours it, purge, stats, Redis outages; import-postgrey from a
// database made by a real, private postgrey; and the installed binary's exit codes.
#include "policyd/grey_admin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/redis/pool.h"
#include "policyd/policy_service.h"
#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::policyd {
namespace {

using common::policy::Request;
using Attrs = std::map<std::string, std::string>;

constexpr std::int64_t kT0 = 1'700'000'000;

Attrs attrs(const std::string& ip, const std::string& sender, const std::string& rcpt,
            const std::string& instance) {
  Attrs a = testing::rcpt_request(ip, sender, rcpt);
  a["instance"] = instance;
  return a;
}

Request to_request(const Attrs& a) {
  Request r;
  for (const auto& [k, v] : a) r.set(k, v);
  return r;
}

class GreyAdminTest : public ::testing::Test {
 protected:
  GreyAdminTest() {
    testing::write_file(dir_ / "clients", "");
    testing::write_file(dir_ / "recipients", "");
  }

  Options options() {
    Options o;
    o.redis.url = redis_.url();
    o.redis.command_timeout = std::chrono::milliseconds(500);
    o.greylist.whitelist_clients = {(dir_ / "clients").string()};
    o.greylist.whitelist_recipients = {(dir_ / "recipients").string()};
    o.greylist.hostname = "mx.test";
    o.greylist.text = "Greylisted for %s seconds (%r)";
    return o;
  }

  GreyOptions grey() {
    GreyOptions g;
    g.policyd = options();
    return g;
  }

  std::unique_ptr<PolicyService> service(const Options& o) {
    return std::make_unique<PolicyService>(o, [this] { return now_.load(); });
  }

  std::string ask(PolicyService& svc, const std::string& ip, const std::string& sender,
                  const std::string& rcpt) {
    return svc.handle(to_request(attrs(ip, sender, rcpt, "i" + std::to_string(++instance_))));
  }

  // Runs one mxguard-grey command; stdout in out_, stderr in err_.
  int run(const GreyOptions& g, const std::vector<std::string>& args) {
    std::ostringstream out;
    std::ostringstream err;
    int rc = run_grey_command(g, args, out, err, [this] { return now_.load(); });
    out_ = out.str();
    err_ = err.str();
    return rc;
  }
  int run(const std::vector<std::string>& args) { return run(grey(), args); }

  // Lines of a table, without its header.
  std::vector<std::string> rows() const {
    std::vector<std::string> out;
    std::istringstream in(out_);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) out.push_back(line);
    return out;
  }

  // Two passed triplets (one from 2001:db8::/64) and one pending one.
  void make_triplets(PolicyService& svc) {
    ask(svc, "198.51.100.7", "alice@s.example", "bob@r.example");
    ask(svc, "2001:db8::7", "", "bob@r.example");
    now_ += 300;
    ask(svc, "198.51.100.7", "alice@s.example", "bob@r.example");
    ask(svc, "2001:db8::7", "", "bob@r.example");
    now_ += 100;
    ask(svc, "203.0.113.9", "carol+list@other.example", "dave@r.example");
  }

  testing::TempDir dir_;
  testing::RedisServer redis_;
  std::atomic<std::int64_t> now_{kT0};
  int instance_ = 0;
  std::string out_;
  std::string err_;
};

TEST_F(GreyAdminTest, ListsEveryTripletWithState) {
  auto svc = service(options());
  make_triplets(*svc);
  ASSERT_EQ(run({"list"}), 0) << err_;
  auto r = rows();
  ASSERT_EQ(r.size(), 3u) << out_;
  EXPECT_EQ(out_.rfind("CLIENT", 0), 0u);
  // Oldest first.
  EXPECT_NE(r[0].find("198.51.100.7"), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("alice@s.example"), std::string::npos);
  EXPECT_NE(r[0].find("passed"), std::string::npos);
  EXPECT_NE(r[0].find("2023-11-14T22:13:20Z"), std::string::npos);  // first seen, kT0
  EXPECT_NE(r[0].find("6m40s"), std::string::npos);                 // age
  EXPECT_NE(r[1].find("<>"), std::string::npos) << r[1];
  EXPECT_NE(r[2].find("203.0.113.9"), std::string::npos) << r[2];
  EXPECT_NE(r[2].find("carol@other.example"), std::string::npos);  // normalised as stored
  EXPECT_NE(r[2].find("pending"), std::string::npos);
}

TEST_F(GreyAdminTest, ListFilters) {
  auto svc = service(options());
  make_triplets(*svc);
  auto g = grey();
  g.state = "pending";
  ASSERT_EQ(run(g, {"list"}), 0);
  ASSERT_EQ(rows().size(), 1u);
  EXPECT_NE(rows()[0].find("203.0.113.9"), std::string::npos);

  g = grey();
  g.state = "passed";
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 2u);

  g = grey();
  g.client = "198.51.100.0/24";
  ASSERT_EQ(run(g, {"list"}), 0);
  ASSERT_EQ(rows().size(), 1u);
  EXPECT_NE(rows()[0].find("alice@"), std::string::npos);

  g = grey();
  g.client = "2001:db8::/32";
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 1u);

  g = grey();
  g.sender = "@OTHER.example";
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 1u);

  g = grey();
  g.sender = "carol+other@other.example";  // normalised like the daemon's key
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 1u);

  g = grey();
  g.recipient = "bob@r.example";
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 2u);

  g = grey();
  g.recipient = "@r.example";
  g.state = "passed";
  g.client = "198.51.100.7";
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 1u);

  g = grey();
  g.recipient = "@nowhere.example";
  ASSERT_EQ(run(g, {"list"}), 0);
  EXPECT_EQ(rows().size(), 0u);
}

TEST_F(GreyAdminTest, ListJson) {
  auto svc = service(options());
  make_triplets(*svc);
  auto g = grey();
  g.json = true;
  g.state = "passed";
  ASSERT_EQ(run(g, {"list"}), 0);
  auto j = nlohmann::json::parse(out_);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["key"], "mxg:gl:{198.51.100.0}:t:198.51.100.0/alice@s.example/bob@r.example");
  EXPECT_EQ(j[0]["client"], "198.51.100.7");
  EXPECT_EQ(j[0]["sender"], "alice@s.example");
  EXPECT_EQ(j[0]["recipient"], "bob@r.example");
  EXPECT_EQ(j[0]["state"], "passed");
  EXPECT_EQ(j[0]["first"], kT0);
  EXPECT_EQ(j[0]["last"], kT0 + 300);
  EXPECT_EQ(j[0]["first_seen"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j[0]["age"], 400);
  EXPECT_EQ(j[1]["sender"], "");
  EXPECT_EQ(j[1]["key"],
            "mxg:gl:{2001:db8::}:t:2001:db8::/"
            "/bob@r.example");
}

TEST_F(GreyAdminTest, PrivacyModeListsHashesAndRefusesAddressFilters) {
  auto o = options();
  o.greylist.privacy = true;
  auto svc = service(o);
  make_triplets(*svc);
  auto g = grey();
  g.policyd = o;
  ASSERT_EQ(run(g, {"list"}), 0) << err_;
  auto r = rows();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_NE(out_.find("TRIPLET-SHA1"), std::string::npos);
  EXPECT_EQ(out_.find("alice"), std::string::npos) << out_;
  Triplet t = make_triplet(*common::net::IpAddress::parse("198.51.100.7"), "alice@s.example",
                           "bob@r.example", o.greylist);
  EXPECT_NE(out_.find(common::redis::sha1_hex(t.postgrey_key())), std::string::npos) << out_;
  g.sender = "@s.example";
  EXPECT_EQ(run(g, {"list"}), kExitUsage);
  EXPECT_NE(err_.find("hashes"), std::string::npos);
  // show still works: it computes the hash from what it is given.
  EXPECT_EQ(
      run(GreyOptions{g.policyd}, {"show", "198.51.100.7", "alice@s.example", "bob@r.example"}), 0)
      << err_;
  EXPECT_NE(out_.find("passed"), std::string::npos);
}

TEST_F(GreyAdminTest, ShowComputesTheDaemonsKey) {
  auto svc = service(options());
  make_triplets(*svc);
  // Another host of the same /24 and an unnormalised sender find the same triplet.
  ASSERT_EQ(run({"show", "203.0.113.200", "carol+x@other.example", "DAVE@r.example"}), 0) << err_;
  EXPECT_NE(out_.find("mxg:gl:{203.0.113.0}:t:203.0.113.0/carol@other.example/dave@r.example"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("pending (a retry is accepted in 5m)"), std::string::npos) << out_;
  EXPECT_NE(out_.find("expires:"), std::string::npos);
  now_ += 120;
  ASSERT_EQ(run({"show", "203.0.113.9", "carol@other.example", "dave@r.example"}), 0);
  EXPECT_NE(out_.find("accepted in 3m"), std::string::npos) << out_;

  auto g = grey();
  g.json = true;
  ASSERT_EQ(run(g, {"show", "198.51.100.7", "alice@s.example", "bob@r.example"}), 0);
  auto j = nlohmann::json::parse(out_);
  EXPECT_EQ(j["state"], "passed");
  EXPECT_GT(j["ttl"].get<long>(), 34 * 86400);

  EXPECT_EQ(run({"show", "198.51.100.7", "nobody@s.example", "bob@r.example"}), kExitNotFound);
  EXPECT_NE(err_.find("no triplet"), std::string::npos);
  EXPECT_EQ(run({"show", "not-an-ip", "a@b", "c@d"}), kExitUsage);
  EXPECT_EQ(run({"show", "198.51.100.7", "a@b"}), kExitUsage);
}

TEST_F(GreyAdminTest, DeleteMakesTheDaemonGreylistAgain) {
  auto svc = service(options());
  make_triplets(*svc);
  EXPECT_EQ(ask(*svc, "198.51.100.7", "alice@s.example", "bob@r.example"), "DUNNO");
  ASSERT_EQ(run({"delete", "198.51.100.7", "alice@s.example", "bob@r.example"}), 0) << err_;
  EXPECT_NE(out_.find("deleted"), std::string::npos);
  EXPECT_EQ(ask(*svc, "198.51.100.7", "alice@s.example", "bob@r.example"),
            "DEFER_IF_PERMIT Greylisted for 300 seconds (r.example)");
  ASSERT_EQ(run({"delete", "2001:db8::1", "<>", "bob@r.example"}), 0) << err_;
  EXPECT_EQ(run({"delete", "2001:db8::1", "<>", "bob@r.example"}), kExitNotFound);
  ASSERT_EQ(run({"list"}), 0);
  EXPECT_EQ(rows().size(), 2u);
}

TEST_F(GreyAdminTest, WhitelistWithTtlIsHonouredByTheDaemon) {
  auto g = grey();
  g.ttl = std::chrono::hours(1);
  ASSERT_EQ(run(g, {"whitelist", "add", "client", "198.51.100.0/24"}), 0) << err_;
  EXPECT_NE(out_.find("expires 2023-11-14T23:13:20Z"), std::string::npos) << out_;
  ASSERT_EQ(run({"whitelist", "add", "sender", "@Partner.EXAMPLE"}), 0) << err_;
  EXPECT_EQ(out_, "added sender partner.example, never expires\n");

  auto svc = service(options());
  EXPECT_EQ(ask(*svc, "198.51.100.7", "a@s.example", "b@r.example"), "DUNNO");
  EXPECT_EQ(ask(*svc, "192.0.2.1", "a@mx.partner.example", "b@r.example"), "DUNNO");
  EXPECT_NE(ask(*svc, "192.0.2.1", "a@s.example", "b@r.example"), "DUNNO");

  now_ += 3601;  // the client entry has expired (and the daemon's 10 s cache with it)
  EXPECT_EQ(ask(*svc, "198.51.100.7", "a@s.example", "b@r.example"),
            "DEFER_IF_PERMIT Greylisted for 300 seconds (r.example)");
  ASSERT_EQ(run({"whitelist", "list"}), 0);
  EXPECT_NE(out_.find("client  198.51.100.0/24  expired 2023-11-14T23:13:20Z"), std::string::npos)
      << out_;
  EXPECT_NE(out_.find("sender  partner.example  never expires"), std::string::npos) << out_;
  g = grey();
  g.json = true;
  ASSERT_EQ(run(g, {"whitelist", "list"}), 0);
  auto j = nlohmann::json::parse(out_);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["kind"], "client");
  EXPECT_EQ(j[0]["expired"], true);
  EXPECT_EQ(j[1]["expires"], 0);

  ASSERT_EQ(run({"whitelist", "del", "sender", "partner.example"}), 0) << err_;
  EXPECT_EQ(run({"whitelist", "del", "sender", "partner.example"}), kExitNotFound);
  now_ += 11;
  EXPECT_NE(ask(*svc, "192.0.2.1", "a@mx.partner.example", "b@r.example"), "DUNNO");

  // A single address is stored as its host network, the form the daemon parses.
  ASSERT_EQ(run({"whitelist", "add", "client", "192.0.2.1"}), 0);
  EXPECT_NE(out_.find("192.0.2.1/32"), std::string::npos) << out_;
  ASSERT_EQ(run({"whitelist", "del", "client", "192.0.2.1/32"}), 0);
}

TEST_F(GreyAdminTest, WhitelistUsageErrors) {
  EXPECT_EQ(run({"whitelist", "add", "client", "300.1.2.3/8"}), kExitUsage);
  EXPECT_NE(err_.find("not an address"), std::string::npos) << err_;
  EXPECT_NE(err_.find("Usage:"), std::string::npos);
  EXPECT_EQ(run({"whitelist", "add", "sender", "user@example.com"}), kExitUsage);
  EXPECT_EQ(run({"whitelist", "add", "recipient", "example.com"}), kExitUsage);
  EXPECT_EQ(run({"whitelist", "add", "client"}), kExitUsage);
  EXPECT_EQ(run({"whitelist"}), kExitUsage);
  auto g = grey();
  g.ttl = std::chrono::hours(1);
  EXPECT_EQ(run(g, {"whitelist", "list"}), kExitUsage);
  EXPECT_NE(err_.find("--ttl does not apply"), std::string::npos);
}

TEST_F(GreyAdminTest, PurgeDeletesOnlyTripletsLastSeenLongAgo) {
  auto svc = service(options());
  ask(*svc, "198.51.100.1", "old@s.example", "b@r.example");
  ask(*svc, "198.51.100.2", "older@s.example", "b@r.example");
  now_ += 300;
  ask(*svc, "198.51.100.1", "old@s.example", "b@r.example");  // passed, last kT0+300
  now_ += 2 * 86400;
  ask(*svc, "192.0.2.1", "new@s.example", "b@r.example");
  ask(*svc, "198.51.100.1", "old@s.example", "c@r.example");

  auto g = grey();
  EXPECT_EQ(run(g, {"purge"}), kExitUsage);
  g.older_than = std::chrono::hours(24);
  ASSERT_EQ(run(g, {"purge"}), 0) << err_;
  // old@ passed and older@ pending, both last seen 2 days ago by the test clock (Redis' TTLs
  // run on real time, so older@ is still there for purge to find).
  EXPECT_EQ(out_, "purged 2 triplets last seen more than 1d ago\n");
  ASSERT_EQ(run({"list"}), 0);
  auto r = rows();
  ASSERT_EQ(r.size(), 2u) << out_;
  for (const auto& row : r) {
    // What is left was seen by the test clock's "now": new@, and old@ to another recipient.
    EXPECT_NE(row.find("c@r.example") != std::string::npos ? row.find("old@s.example")
                                                           : row.find("new@s.example"),
              std::string::npos)
        << row;
  }
  ASSERT_EQ(run(g, {"purge"}), 0);
  EXPECT_EQ(out_, "purged 0 triplets last seen more than 1d ago\n");
}

TEST_F(GreyAdminTest, PurgeScansManyKeys) {
  // More keys than one SCAN step and one pipeline batch.
  common::redis::Pool pool(options().redis);
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 2500; ++i) {
    std::string key = "mxg:gl:{192.0.2.0}:t:192.0.2.0/s" + std::to_string(i) + "@x/r@y";
    cmds.push_back({"HSET", key, "first", std::to_string(kT0), "last",
                    std::to_string(i % 2 ? kT0 : kT0 - 5 * 86400)});
  }
  pool.pipeline(cmds);
  auto g = grey();
  g.older_than = std::chrono::hours(72);
  ASSERT_EQ(run(g, {"purge"}), 0) << err_;
  EXPECT_EQ(out_, "purged 1250 triplets last seen more than 3d ago\n");
  ASSERT_EQ(run({"stats"}), 0);
  EXPECT_NE(out_.find("triplets pending:   1250"), std::string::npos) << out_;
}

TEST_F(GreyAdminTest, Stats) {
  auto o = options();
  o.greylist.auto_whitelist_clients = 1;
  auto svc = service(o);
  make_triplets(*svc);
  auto g = grey();
  g.policyd = o;
  g.ttl = std::chrono::seconds(10);
  ASSERT_EQ(run(g, {"whitelist", "add", "client", "192.0.2.0/24"}), 0);
  ASSERT_EQ(run({"whitelist", "add", "sender", "a.example"}), 0);
  now_ += 11;
  g = grey();
  g.policyd = o;
  ASSERT_EQ(run(g, {"stats"}), 0) << err_;
  EXPECT_NE(out_.find("triplets pending:   1\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("triplets passed:    2\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("awl clients:        2 (2 reached 1 deliveries: whitelisted)"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("whitelist entries:  1 active, 1 expired"), std::string::npos) << out_;
  EXPECT_NE(out_.find("redis used memory:  "), std::string::npos);
  g.json = true;
  ASSERT_EQ(run(g, {"stats"}), 0);
  auto j = nlohmann::json::parse(out_);
  EXPECT_EQ(j["triplets_passed"], 2);
  EXPECT_EQ(j["awl_clients"], 2);
  EXPECT_FALSE(j["redis_used_memory"].get<std::string>().empty());
}

TEST_F(GreyAdminTest, UnreachableRedisIsExit69) {
  redis_.stop();
  EXPECT_EQ(run({"stats"}), kExitUnavailable);
  EXPECT_NE(err_.find("Redis unavailable"), std::string::npos) << err_;
  EXPECT_EQ(run({"list"}), kExitUnavailable);
  // A usage error is reported as one even while Redis is down.
  EXPECT_EQ(run({"frobnicate"}), kExitUsage);
  EXPECT_EQ(run({}), kExitUsage);
}

TEST_F(GreyAdminTest, ImportCountsTtlsFromLastSeenAndKeepsNewerEntries) {
  common::redis::Pool pool(options().redis);
  GreyAdmin admin(options(), pool, [this] { return now_.load(); });
  auto n = admin.import_triplets({{"198.51.100.0/a@s.example/b@r.example",
                                   std::to_string(kT0 - 5000) + "," + std::to_string(kT0 - 1000)},
                                  {"198.51.100.0/p@s.example/b@r.example",
                                   std::to_string(kT0 - 1000) + "," + std::to_string(kT0 - 1000)},
                                  {"198.51.100.0/x@s.example/b@r.example", "garbage"},
                                  {"garbage", "1,2"}},
                                 false);
  EXPECT_EQ(n.read, 4u);
  EXPECT_EQ(n.passed, 1u);
  EXPECT_EQ(n.pending, 1u);
  EXPECT_EQ(n.malformed, 2u);
  EXPECT_NEAR(pool.command({"TTL", "mxg:gl:{198.51.100.0}:t:198.51.100.0/a@s.example/b@r.example"})
                  .as_integer(),
              35 * 86400 - 1000, 2);
  EXPECT_NEAR(pool.command({"TTL", "mxg:gl:{198.51.100.0}:t:198.51.100.0/p@s.example/b@r.example"})
                  .as_integer(),
              2 * 86400 - 1000, 2);
  auto f =
      pool.command({"HGETALL", "mxg:gl:{198.51.100.0}:t:198.51.100.0/a@s.example/b@r.example"});
  EXPECT_EQ(f.as_array().size(), 8u);  // first, last, s, r: no client address to store

  // The daemon saw the triplet after postgrey did: importing again keeps the daemon's state.
  auto svc = service(options());
  EXPECT_EQ(ask(*svc, "198.51.100.1", "a@s.example", "b@r.example"), "DUNNO");
  n = admin.import_triplets({{"198.51.100.0/a@s.example/b@r.example", "1,2"}}, false);
  EXPECT_EQ(n.expired, 1u);
  n = admin.import_triplets({{"198.51.100.0/a@s.example/b@r.example",
                              std::to_string(kT0 - 10) + "," + std::to_string(kT0 - 5)}},
                            false);
  EXPECT_EQ(n.kept_newer, 1u);
  EXPECT_EQ(pool.command({"HGET", "mxg:gl:{198.51.100.0}:t:198.51.100.0/a@s.example/b@r.example",
                          "first"})
                .as_string(),
            std::to_string(kT0 - 5000));
}

// ---- import-postgrey from a real postgrey -----------------------------------------------------

// A private postgrey: its own port and dbdir, root so that the TempDir needs no chown, the same
// timings as mxguard-policyd's defaults, and the same reply text so answers compare 1:1.
class Postgrey {
 public:
  explicit Postgrey(const std::filesystem::path& dbdir, std::vector<std::string> extra = {})
      : port_(testing::free_tcp_port()) {
    std::vector<std::string> argv{"postgrey",
                                  "--inet=127.0.0.1:" + std::to_string(port_),
                                  "--dbdir=" + dbdir.string(),
                                  "--delay=300",
                                  "--max-age=35",
                                  "--retry-window=2",
                                  "--auto-whitelist-clients=5",
                                  "--user=root",
                                  "--group=root",
                                  "--whitelist-clients=/dev/null",
                                  "--whitelist-recipients=/dev/null",
                                  "--greylist-text=Greylisted for %s seconds (%r)"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = testing::Process(argv, dbdir.parent_path() / "postgrey.log");
    if (!testing::wait_for_tcp("127.0.0.1", port_, std::chrono::seconds(15))) {
      throw std::runtime_error("postgrey did not start: " + process_.log());
    }
  }
  std::string ask(Attrs a, std::int64_t when) {
    a["policy_test_time"] = std::to_string(when);
    testing::PolicyClient c("127.0.0.1", port_);
    return c.ask(a);
  }
  // postgrey takes about two seconds to exit on SIGTERM; a longer grace than the fixture's
  // default keeps it from being SIGKILLed (the import would still work: it replays the log).
  void stop() { process_.stop(SIGTERM, std::chrono::seconds(10)); }
  void kill() { process_.stop(SIGKILL); }

 private:
  int port_;
  testing::Process process_;
};

bool have_postgrey() {
  return ::geteuid() == 0 && std::filesystem::exists("/usr/sbin/postgrey") &&
         testing::run_command({"sh", "-c", "command -v db5.3_dump"}) == 0;
}

class ImportPostgreyTest : public GreyAdminTest {
 protected:
  void SetUp() override {
    if (!have_postgrey()) GTEST_SKIP() << "needs root, postgrey and db5.3_dump";
    std::filesystem::create_directory(dbdir_);
  }
  std::filesystem::path dbdir_ = dir_ / "postgrey";
};

TEST_F(ImportPostgreyTest, DaemonAnswersAsPostgreyWouldHave) {
  // Triplets as they happen: some passed, some still pending, with odd senders.
  struct Case {
    Attrs a;
    std::vector<std::int64_t> seen;  // times postgrey saw it before the switch
  };
  std::vector<Case> cases{
      {attrs("198.51.100.7", "alice@s.example", "bob@r.example", "m1"), {kT0, kT0 + 400}},
      {attrs("198.51.100.8", "a/b/c@s.example", "bob@r.example", "m2"), {kT0, kT0 + 300}},
      {attrs("2001:db8::7", "", "bob@r.example", "m3"), {kT0, kT0 + 600}},
      {attrs("192.0.2.10", "prvs=1234567890=news@lists.example", "Carol@R.example", "m4"),
       {kT0 + 100, kT0 + 700}},
      {attrs("203.0.113.5", "dave@s.example", "bob@r.example", "m5"), {kT0 + 600}},
      {attrs("2001:db8:1::5", "eve@s.example", "bob@r.example", "m6"), {kT0 + 650}},
      {attrs("198.51.100.77", "frank@s.example", "bob@r.example", "m7"), {kT0 + 550, kT0 + 700}},
      // Pending and out of its retry window: both start over at the switch.
      {attrs("198.51.100.99", "gina@s.example", "bob@r.example", "m8"), {kT0 - 3 * 86400}},
  };
  // Passed but past --max-age: skipped as expired. (postgrey forgets it in its nightly maintenance,
  // so its answer before that is not compared.)
  Attrs stale = attrs("192.0.2.99", "old@s.example", "bob@r.example", "m9");
  const std::int64_t switch_time = kT0 + 800;
  std::vector<std::string> postgrey_answers;
  {
    Postgrey pg(dbdir_);
    int n = 0;
    for (const auto& c : cases) {
      for (auto t : c.seen) {
        Attrs a = c.a;
        a["instance"] = "pre" + std::to_string(++n);
        pg.ask(a, t);
      }
    }
    pg.ask(stale, kT0 - 40 * 86400);
    stale["instance"] = "m9b";
    pg.ask(stale, kT0 - 40 * 86400 + 300);
    // What postgrey answers at the switch (for a pending triplet this moves only `last`,
    // which the daemon's answer does not depend on).
    for (const auto& c : cases) {
      Attrs a = c.a;
      a["instance"] = "switch-" + a["instance"];
      postgrey_answers.push_back(pg.ask(a, switch_time));
    }
    pg.stop();
  }
  // The states the cases were made for, as postgrey sees them.
  const std::vector<std::string> expected{"DUNNO",
                                          "DUNNO",
                                          "DUNNO",
                                          "DUNNO",
                                          "DEFER_IF_PERMIT Greylisted for 100 seconds (r.example)",
                                          "DEFER_IF_PERMIT Greylisted for 150 seconds (r.example)",
                                          "DEFER_IF_PERMIT Greylisted for 50 seconds (r.example)",
                                          "DEFER_IF_PERMIT Greylisted for 300 seconds (r.example)"};
  EXPECT_EQ(postgrey_answers, expected);

  now_ = switch_time;
  auto g = grey();
  g.dry_run = true;
  ASSERT_EQ(run(g, {"import-postgrey", dbdir_.string()}), 0) << err_;
  EXPECT_NE(out_.find("postgrey.db: 9 entries read; would import 4 passed and 4 pending "
                      "triplets; skipped 1 expired\n"),
            std::string::npos)
      << out_;
  ASSERT_EQ(run({"list"}), 0);
  EXPECT_TRUE(rows().empty()) << "dry run wrote: " << out_;

  ASSERT_EQ(run({"import-postgrey", dbdir_.string()}), 0) << err_;
  EXPECT_EQ(err_, "");
  EXPECT_NE(out_.find("postgrey.db: 9 entries read; imported 4 passed and 4 pending triplets; "
                      "skipped 1 expired\n"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("postgrey_clients.db: 5 entries read; imported 4 auto-whitelist clients; "
                      "skipped 1 expired\n"),
            std::string::npos)
      << out_;
  ASSERT_EQ(run({"stats"}), 0);
  EXPECT_NE(out_.find("awl clients:        4 "), std::string::npos) << out_;

  // Imported keys carry the daemon's TTLs: passed max-age, pending the retry window, both
  // counted from postgrey's last-seen time
  // (here the switch, when postgrey saw them all once more).
  common::redis::Pool pool(options().redis);
  EXPECT_NEAR(pool.command({"TTL",
                            "mxg:gl:{198.51.100.0}:t:198.51.100.0/a/b/c@s.example/"
                            "bob@r.example"})
                  .as_integer(),
              35 * 86400, 2);
  EXPECT_NEAR(
      pool.command({"TTL", "mxg:gl:{2001:db8:1::}:t:2001:db8:1::/eve@s.example/bob@r.example"})
          .as_integer(),
      2 * 86400, 2);

  // The daemon at the same moment gives the same answers.
  auto svc = service(options());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    Attrs a = cases[i].a;
    a["instance"] = "switch-" + a["instance"];
    EXPECT_EQ(svc->handle(to_request(a)), postgrey_answers[i]) << "case " << i;
  }
  // A pending triplet passes once its delay is over, as a new one would.
  now_ = switch_time + 100;
  Attrs dave = cases[4].a;
  dave["instance"] = "later";
  EXPECT_EQ(svc->handle(to_request(dave))
                .rfind("PREPEND X-Greylist: delayed 300 seconds by mxguard-policyd-", 0),
            0u);
}

TEST_F(ImportPostgreyTest, PrivacyDatabaseIsReportedAndSkipped) {
  {
    Postgrey pg(dbdir_, {"--privacy"});
    pg.ask(attrs("198.51.100.7", "alice@s.example", "bob@r.example", "p1"), kT0);
    pg.ask(attrs("198.51.100.7", "alice@s.example", "bob@r.example", "p2"), kT0 + 300);
    pg.ask(attrs("198.51.100.9", "bert@s.example", "bob@r.example", "p3"), kT0 + 300);
    pg.stop();
  }
  now_ = kT0 + 400;
  ASSERT_EQ(run({"import-postgrey", dbdir_.string()}), 0) << err_;
  EXPECT_NE(out_.find("postgrey.db: 2 entries read; imported 0 passed and 0 pending"),
            std::string::npos)
      << out_;
  EXPECT_NE(err_.find("skipped 3 entries stored by postgrey --privacy"), std::string::npos) << err_;
  EXPECT_NE(err_.find("cannot be recovered"), std::string::npos);
  ASSERT_EQ(run({"stats"}), 0);
  EXPECT_NE(out_.find("triplets passed:    0"), std::string::npos) << out_;
}

TEST_F(ImportPostgreyTest, KilledPostgreyLosesNothingCommitted) {
  // After SIGKILL the .db files hold nothing yet: the entries are only in the transaction log.
  {
    Postgrey pg(dbdir_);
    pg.ask(attrs("198.51.100.7", "alice@s.example", "bob@r.example", "k1"), kT0);
    pg.ask(attrs("198.51.100.7", "alice@s.example", "bob@r.example", "k2"), kT0 + 300);
    pg.kill();
  }
  auto before = std::filesystem::last_write_time(dbdir_ / "postgrey.db");
  now_ = kT0 + 400;
  ASSERT_EQ(run({"import-postgrey", dbdir_.string()}), 0) << err_;
  EXPECT_NE(out_.find("postgrey.db: 1 entries read; imported 1 passed and 0 pending"),
            std::string::npos)
      << out_;
  // Recovery ran on a copy: postgrey's directory is as it was.
  EXPECT_EQ(std::filesystem::last_write_time(dbdir_ / "postgrey.db"), before);
}

TEST_F(ImportPostgreyTest, MissingOrBrokenDatabase) {
  EXPECT_EQ(run({"import-postgrey", (dir_ / "nowhere").string()}), kExitNoInput);
  EXPECT_NE(err_.find("postgrey.db: no such file"), std::string::npos) << err_;
  testing::write_file(dbdir_ / "postgrey.db", "not a berkeley db");
  EXPECT_EQ(run({"import-postgrey", dbdir_.string()}), kExitSoftware);
  EXPECT_NE(err_.find("failed"), std::string::npos) << err_;
  EXPECT_EQ(run({"import-postgrey"}), kExitUsage);
}

// ---- the binary -------------------------------------------------------------------------------

class GreyBinaryTest : public GreyAdminTest {
 protected:
  int grey_cli(std::vector<std::string> args, std::string* output) {
    testing::write_file(dir_ / "policyd.conf", "redis-url = " + redis_.url() +
                                                   "\n"
                                                   "greylist-whitelist-clients = " +
                                                   (dir_ / "clients").string() +
                                                   "\n"
                                                   "greylist-whitelist-recipients = " +
                                                   (dir_ / "recipients").string() + "\n");
    args.insert(args.begin(), {kBinary, "-c", (dir_ / "policyd.conf").string()});
    return testing::run_command(args, output);
  }
  const std::string kBinary = std::string(MXGUARD_BINARY_DIR) + "/policyd/mxguard-grey";
};

TEST_F(GreyBinaryTest, ExitCodesAndMessages) {
  std::string out;
  EXPECT_EQ(grey_cli({"whitelist", "add", "client", "198.51.100.0/24", "--ttl", "1h"}, &out), 0)
      << out;
  EXPECT_NE(out.find("added client 198.51.100.0/24, expires "), std::string::npos) << out;
  EXPECT_EQ(grey_cli({"whitelist", "list", "--json"}, &out), 0) << out;
  EXPECT_NE(out.find("\"kind\": \"client\""), std::string::npos) << out;
  EXPECT_EQ(grey_cli({"stats"}, &out), 0) << out;
  EXPECT_EQ(grey_cli({"list", "--state", "passed"}, &out), 0) << out;

  EXPECT_EQ(grey_cli({}, &out), kExitUsage);
  EXPECT_NE(out.find("mxguard-grey: no command given\nUsage: mxguard-grey [OPTIONS] COMMAND"),
            std::string::npos)
      << out;
  EXPECT_EQ(grey_cli({"show", "1.2.3.4"}, &out), kExitUsage);
  EXPECT_NE(out.find("expected: show CLIENT-IP SENDER RECIPIENT"), std::string::npos) << out;
  EXPECT_EQ(grey_cli({"show", "198.51.100.7", "a@b.example", "c@d.example"}, &out), kExitNotFound);
  EXPECT_EQ(grey_cli({"delete", "1.2.3.4", "a@b", "c@d", "--json"}, &out), kExitUsage);
  EXPECT_NE(out.find("--json does not apply to 'delete'"), std::string::npos) << out;
  // Option values are checked by the config layer: exit 78 like every mxguard program.
  EXPECT_EQ(grey_cli({"list", "--state", "maybe"}, &out), 78);
  EXPECT_NE(out.find("state: expected pending or passed"), std::string::npos) << out;
  EXPECT_EQ(grey_cli({"purge", "--older-than", "soon"}, &out), 78);
  EXPECT_EQ(grey_cli({"list", "--no-such-option"}, &out), 78);

  EXPECT_EQ(grey_cli({"--help"}, &out), 0);
  EXPECT_NE(out.find("Usage: mxguard-grey [OPTIONS] COMMAND [ARGS...]"), std::string::npos);
  EXPECT_NE(out.find("import-postgrey DIR [--dry-run]"), std::string::npos) << out;
  EXPECT_NE(out.find("--greylist-delay"), std::string::npos);  // the daemon's options too

  redis_.stop();
  EXPECT_EQ(grey_cli({"stats"}, &out), kExitUnavailable);
  EXPECT_NE(out.find("mxguard-grey: Redis unavailable: "), std::string::npos) << out;
  EXPECT_EQ(out.find("warning:"), std::string::npos) << "reported once, not twice: " << out;
}

}  // namespace
}  // namespace mxguard::policyd
