// Tests common/dns/resolver.cc against a real DNS server (tests/fixtures/dns_server.h): one test
// per answer kind the mail checks must tell apart, plus concurrency and shutdown.
#include "common/dns/resolver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "tests/fixtures/dns_server.h"

namespace mxguard::common::dns {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

std::string zone() {
  std::string z = R"($ORIGIN example.test.
$TTL 300
@        IN SOA ns1 hostmaster 1 3600 600 86400 60
@        IN NS  ns1
ns1      IN A   192.0.2.53
host     IN A   192.0.2.1
host     IN A   192.0.2.2
host     IN AAAA 2001:db8::1
alias    IN CNAME host
@        IN MX  20 mx2
@        IN MX  10 mx1
@        IN MX  30 mx3
multi    IN TXT "v=spf1 " "ip4:192.0.2.0/24" " -all"
txtonly  IN TXT "hello"
!servfail broken.example.test.
!timeout slow.example.test.
$ORIGIN example.com.
@        IN SOA ns1 hostmaster 1 3600 600 86400 60
www      IN A   198.51.100.7
4.3.2.1.in-addr.arpa. IN PTR host.example.test.
)";
  // 600 bytes: over 512, so no answer without EDNS; and 1500 bytes: over unbound's EDNS size,
  // so the UDP reply is truncated and unbound must retry over TCP.
  z += "long.example.test. IN TXT \"" + repeat('a', 255) + "\" \"" + repeat('b', 255) + "\" \"" +
       repeat('c', 90) + "\"\n";
  z += "huge.example.test. IN TXT";
  for (char c = 'd'; c < 'j'; ++c) z += " \"" + repeat(c, 250) + "\"";
  z += "\n";
  z += ptr_name("2001:4860::8888") + ". IN PTR www.example.com.\n";
  // Issue 15, finding 2: one TXT over the resolver's 8 KB limit; five of 5,000 octets at one
  // name (25 KB, over the 16 KB a cached answer may hold); twelve 1,500-octet answers.
  auto txt = [](char c, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; i += 250)
      out += " \"" + repeat(c, std::min<std::size_t>(250, n - i)) + "\"";
    return out;
  };
  z += "giant.example.test. IN TXT" + txt('g', 9000) + "\n";
  z += "giant2.example.test. IN TXT" + txt('g', 9000) + "\n";
  z += "giant2.example.test. IN TXT \"small\"\n";
  for (char c = 'k'; c < 'p'; ++c) z += "fat.example.test. IN TXT" + txt(c, 5000) + "\n";
  for (int i = 0; i < 12; ++i) {
    z += "n" + std::to_string(i) + ".example.test. IN TXT" + txt('n', 1500) + "\n";
  }
  return z;
}

class ResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new testing::DnsServer(zone()); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ResolverOptions options(std::chrono::milliseconds timeout = 3s) {
    ResolverOptions o;
    o.servers = {server_->server_spec()};
    o.timeout = timeout;
    return o;
  }
  static testing::DnsServer* server_;
};
testing::DnsServer* ResolverTest::server_ = nullptr;

TEST_F(ResolverTest, ARecordsUnderTheTestZone) {
  Resolver r(options());
  auto a = r.lookup_a("host.example.test");
  ASSERT_EQ(a.status, Status::kOk) << server_->log();
  EXPECT_THAT(a.records, UnorderedElementsAre("192.0.2.1", "192.0.2.2"));
  EXPECT_GT(a.ttl, 0);
  EXPECT_LE(a.ttl, 300);
}

TEST_F(ResolverTest, ARecordOutsideTheTestZone) {
  Resolver r(options());
  auto a = r.lookup_a("www.example.com.");
  ASSERT_EQ(a.status, Status::kOk);
  EXPECT_THAT(a.records, ElementsAre("198.51.100.7"));
}

TEST_F(ResolverTest, CnameIsFollowed) {
  Resolver r(options());
  auto a = r.lookup_a("alias.example.test");
  ASSERT_EQ(a.status, Status::kOk);
  EXPECT_THAT(a.records, UnorderedElementsAre("192.0.2.1", "192.0.2.2"));
}

TEST_F(ResolverTest, Aaaa) {
  Resolver r(options());
  auto a = r.lookup_aaaa("host.example.test");
  ASSERT_EQ(a.status, Status::kOk);
  EXPECT_THAT(a.records, ElementsAre("2001:db8::1"));
}

TEST_F(ResolverTest, MxSortedByPreference) {
  Resolver r(options());
  auto mx = r.lookup_mx("example.test");
  ASSERT_EQ(mx.status, Status::kOk);
  EXPECT_THAT(mx.records,
              ElementsAre(MxRecord{10, "mx1.example.test"}, MxRecord{20, "mx2.example.test"},
                          MxRecord{30, "mx3.example.test"}));
}

TEST_F(ResolverTest, TxtStringsAreConcatenated) {
  Resolver r(options());
  auto txt = r.lookup_txt("multi.example.test");
  ASSERT_EQ(txt.status, Status::kOk);
  EXPECT_THAT(txt.records, ElementsAre("v=spf1 ip4:192.0.2.0/24 -all"));
}

TEST_F(ResolverTest, TxtLongerThan255Bytes) {
  Resolver r(options());
  auto txt = r.lookup_txt("long.example.test");
  ASSERT_EQ(txt.status, Status::kOk);
  ASSERT_EQ(txt.records.size(), 1u);
  EXPECT_EQ(txt.records[0], repeat('a', 255) + repeat('b', 255) + repeat('c', 90));
}

TEST_F(ResolverTest, TxtTooLargeForUdpComesOverTcp) {
  Resolver r(options());
  auto txt = r.lookup_txt("huge.example.test");
  ASSERT_EQ(txt.status, Status::kOk) << server_->log();
  ASSERT_EQ(txt.records.size(), 1u);
  EXPECT_EQ(txt.records[0].size(), 1500u);
  EXPECT_EQ(txt.records[0].substr(0, 3), "ddd");
  EXPECT_EQ(txt.records[0].substr(1497), "iii");
  // One truncated UDP reply, then the same query over TCP.
  EXPECT_GE(server_->queries_for("huge.example.test."), 2) << server_->log();
}

TEST_F(ResolverTest, PtrV4AndV6) {
  Resolver r(options());
  auto v4 = r.lookup_ptr("1.2.3.4");
  ASSERT_EQ(v4.status, Status::kOk);
  EXPECT_THAT(v4.records, ElementsAre("host.example.test"));
  auto v6 = r.lookup_ptr("2001:4860::8888");
  ASSERT_EQ(v6.status, Status::kOk);
  EXPECT_THAT(v6.records, ElementsAre("www.example.com"));
  EXPECT_THROW(r.lookup_ptr("not-an-ip"), std::invalid_argument);
}

TEST_F(ResolverTest, NxDomain) {
  Resolver r(options());
  auto a = r.lookup_txt("missing.example.test");
  EXPECT_EQ(a.status, Status::kNxDomain);
  EXPECT_TRUE(a.records.empty());
  auto text = metrics::Registry::global().render();
  EXPECT_NE(text.find("mxguard_dns_lookups_total{type=\"TXT\",status=\"nxdomain\"}"),
            std::string::npos)
      << text;
}

TEST_F(ResolverTest, NoData) {
  Resolver r(options());
  EXPECT_EQ(r.lookup_a("txtonly.example.test").status, Status::kNoData);
  // An empty non-terminal (ns1 exists, so does the apex) has no data either.
  EXPECT_EQ(r.lookup_txt("ns1.example.test").status, Status::kNoData);
}

TEST_F(ResolverTest, ServFail) {
  Resolver r(options());
  EXPECT_EQ(r.lookup_a("broken.example.test").status, Status::kServFail);
}

TEST_F(ResolverTest, TimeoutIsQuickAndDistinct) {
  Resolver r(options(300ms));
  auto start = std::chrono::steady_clock::now();
  auto a = r.lookup_a("slow.example.test");
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(a.status, Status::kTimeout);
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 1s);
  // The resolver is still usable after a cancelled query.
  EXPECT_EQ(r.lookup_a("host.example.test").status, Status::kOk);
}

TEST_F(ResolverTest, GenericLookupGivesRfc3597TextForOtherTypes) {
  Resolver r(options());
  auto soa = r.lookup("example.test", kTypeSoa);
  ASSERT_EQ(soa.status, Status::kOk);
  ASSERT_EQ(soa.records.size(), 1u);
  EXPECT_EQ(soa.records[0].substr(0, 3), "\\# ");
  auto ns = r.lookup("example.test", kTypeNs);
  ASSERT_EQ(ns.status, Status::kOk);
  EXPECT_THAT(ns.records, ElementsAre("ns1.example.test"));
}

TEST_F(ResolverTest, BadNameIsAnError) {
  Resolver r(options());
  EXPECT_EQ(r.lookup_a(repeat('x', 64) + ".example.test").status, Status::kError);
}

TEST_F(ResolverTest, CacheCanBeTurnedOff) {
  {
    Resolver cached(options());
    int before = server_->queries_for("www.example.com.");
    cached.lookup_a("www.example.com");
    cached.lookup_a("www.example.com");
    EXPECT_EQ(server_->queries_for("www.example.com."), before + 1);
  }
  auto o = options();
  o.cache = false;
  Resolver uncached(o);
  int before = server_->queries_for("www.example.com.");
  uncached.lookup_a("www.example.com");
  uncached.lookup_a("www.example.com");
  EXPECT_EQ(server_->queries_for("www.example.com."), before + 2);
}

// A TXT record longer than 8 KB is skipped: alone it is no record at all (a verdict, not an
// error to retry), beside others the others stay.
TEST_F(ResolverTest, OversizedTxtRecordsAreSkipped) {
  Resolver r(options());
  auto alone = r.lookup_txt("giant.example.test");
  EXPECT_EQ(alone.status, Status::kNoData) << status_name(alone.status);
  EXPECT_TRUE(alone.records.empty());
  auto beside = r.lookup_txt("giant2.example.test");
  ASSERT_EQ(beside.status, Status::kOk);
  EXPECT_THAT(beside.records, ElementsAre("small"));
}

// An answer bigger than cache_max_answer_bytes (16 KB by default) is not kept in our cache.
TEST_F(ResolverTest, LargeAnswersAreNotCached) {
  Resolver r(options());
  auto fat = r.lookup_txt("fat.example.test");
  ASSERT_EQ(fat.status, Status::kOk);
  EXPECT_EQ(fat.records.size(), 5u);
  EXPECT_FALSE(r.cached("fat.example.test", kTypeTxt).has_value());
  r.lookup_txt("multi.example.test");
  EXPECT_TRUE(r.cached("multi.example.test", kTypeTxt).has_value());
}

// The cache is bounded in bytes: past the budget the oldest answers go first.
TEST_F(ResolverTest, CacheIsBoundedInBytesOldestFirst) {
  auto o = options();
  o.cache_max_bytes = 8 * 1024;  // room for four or five 1,500-octet answers
  Resolver r(o);
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(r.lookup_txt("n" + std::to_string(i) + ".example.test").status, Status::kOk);
  }
  int kept = 0;
  for (int i = 0; i < 12; ++i) {
    kept += r.cached("n" + std::to_string(i) + ".example.test", kTypeTxt).has_value();
  }
  EXPECT_GE(kept, 3);
  EXPECT_LE(kept, 5);
  EXPECT_FALSE(r.cached("n0.example.test", kTypeTxt).has_value());
  EXPECT_TRUE(r.cached("n11.example.test", kTypeTxt).has_value());
}

TEST_F(ResolverTest, AsyncCallbackCanChainButNotBlock) {
  Resolver r(options());
  std::promise<std::pair<Answer, bool>> done;
  r.resolve_async("example.test", kTypeMx, [&](Answer mx) {
    auto exchange = to_mx(mx).records.at(0).exchange;
    bool blocking_refused = false;
    try {
      r.lookup_a(exchange);
    } catch (const std::logic_error&) {
      blocking_refused = true;
    }
    // Chained lookup from inside a callback, as the SPF evaluator does for "mx".
    r.resolve_async("host.example.test", kTypeA, [&done, blocking_refused](Answer a) {
      done.set_value({std::move(a), blocking_refused});
    });
  });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto [a, blocking_refused] = future.get();
  EXPECT_EQ(a.status, Status::kOk);
  EXPECT_TRUE(blocking_refused);
}

TEST_F(ResolverTest, ConcurrentLookupsFromEightThreads) {
  Resolver r(options());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        switch ((t + i) % 4) {
          case 0:
            wrong += r.lookup_a("host.example.test").records.size() != 2;
            break;
          case 1:
            wrong += r.lookup_mx("example.test").records.size() != 3;
            break;
          case 2:
            wrong += r.lookup_txt("nothing.example.test").status != Status::kNxDomain;
            break;
          case 3:
            wrong +=
                r.lookup_ptr("1.2.3.4").records != std::vector<std::string>{"host.example.test"};
            break;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
}

TEST_F(ResolverTest, DestroyedWithQueriesInFlight) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto after_destruction = std::make_shared<std::atomic<int>>(0);
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  constexpr int kQueries = 100;
  auto start = std::chrono::steady_clock::now();
  {
    Resolver r(options(10s));
    for (int i = 0; i < kQueries; ++i) {
      const char* name = i % 2 ? "slow.example.test" : "host.example.test";
      r.resolve_async(name, kTypeA, [=](Answer) {
        ++*calls;
        if (*destroyed) ++*after_destruction;
      });
    }
  }
  *destroyed = true;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(*calls, kQueries);
  EXPECT_EQ(*after_destruction, 0);
}

}  // namespace
}  // namespace mxguard::common::dns
