// DNS list sites (dns_lists.h): the zone[=filter] syntax and its errors, query names for IPv4
// and IPv6 clients, and which answers count as a listing — without DNS.
#include "policyd/dns_lists.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <map>
#include <thread>

#include "common/config/config.h"

namespace mxguard::policyd {
namespace {

using common::dns::Answer;
using common::dns::Status;
using common::net::IpAddress;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

Answer answer(Status st, std::vector<std::string> records = {}) {
  Answer a;
  a.status = st;
  a.records = std::move(records);
  a.ttl = 60;
  return a;
}

TEST(DnsListsTest, QueryNamesReverseOctetsAndNibbles) {
  auto s = DnsListSite::parse("Zen.Example.");
  EXPECT_EQ(s.zone(), "zen.example");
  EXPECT_EQ(s.query_name(ip("192.0.2.99")), "99.2.0.192.zen.example");
  EXPECT_EQ(s.query_name(ip("2001:db8::1")),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example");
  // An IPv4-mapped client is looked up as IPv4.
  EXPECT_EQ(s.query_name(ip("::ffff:192.0.2.99")), "99.2.0.192.zen.example");
}

TEST(DnsListsTest, WithoutAFilterAny127AnswerButTheErrorCodesIsAListing) {
  auto s = DnsListSite::parse("zen.example");
  EXPECT_TRUE(s.accepts(ip("127.0.0.2")));
  EXPECT_TRUE(s.accepts(ip("127.0.1.200")));
  EXPECT_FALSE(s.accepts(ip("127.255.255.254")));  // e.g. "queried through a public resolver"
  EXPECT_FALSE(s.accepts(ip("127.255.255.252")));
  // A parked or wildcarded list domain answers with web server addresses: never a listing.
  EXPECT_FALSE(s.accepts(ip("192.0.2.1")));
  EXPECT_FALSE(s.accepts(ip("::1")));
}

TEST(DnsListsTest, FiltersUsePostfixsOctetSyntax) {
  auto s = DnsListSite::parse("zen.example=127.0.0.[2..11]");
  EXPECT_FALSE(s.accepts(ip("127.0.0.1")));
  EXPECT_TRUE(s.accepts(ip("127.0.0.2")));
  EXPECT_TRUE(s.accepts(ip("127.0.0.11")));
  EXPECT_FALSE(s.accepts(ip("127.0.0.12")));
  auto w = DnsListSite::parse("list.dnswl.example=127.0.[0..255].[1;2;3]");
  EXPECT_TRUE(w.accepts(ip("127.0.15.2")));
  EXPECT_FALSE(w.accepts(ip("127.0.15.0")));
  EXPECT_FALSE(w.accepts(ip("127.0.0.255")));  // dnswl.org's "over the query limit"
  auto one = DnsListSite::parse("bl.example=127.0.0.2");
  EXPECT_TRUE(one.accepts(ip("127.0.0.2")));
  EXPECT_FALSE(one.accepts(ip("127.0.0.3")));
  EXPECT_EQ(format_value(w), "list.dnswl.example=127.0.[0..255].[1;2;3]");
  // A filter can reach the error codes when a list really uses them as listings.
  EXPECT_TRUE(DnsListSite::parse("x.example=127.255.255.[0..255]").accepts(ip("127.255.255.1")));
}

TEST(DnsListsTest, BadSitesAreErrorsThatSayWhatIsWrong) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (auto c : std::vector<Case>{
           {"", "no zone"},
           {"=127.0.0.2", "no zone"},
           {"localhost", "two labels"},
           {"zen example", "character"},
           {"zen..example", "label"},
           {"zen.example=127.0.0", "four octets"},
           {"zen.example=127.0.0.256", "0 to 255"},
           {"zen.example=127.0.0.[2..]", "0 to 255"},
           {"zen.example=127.0.0.[9..2]", "backwards"},
           {"zen.example=127.0.0.[2", "without ']'"},
           {"zen.example=127.0.0.2]", "without '['"},
           {"zen.example=10.0.0.[2..11]", "first octet must be 127"},
           {"zen.example=127.0.0.[2..11]*2", "weights"},
       }) {
    try {
      DnsListSite::parse(c.text);
      ADD_FAILURE() << c.text << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos)
          << c.text << ": " << e.what();
    }
  }
}

TEST(DnsListsTest, ConfigFileErrorsNameFileAndLine) {
  std::vector<DnsListSite> sites;
  common::config::Binder b;
  b.add("greylist-dnsbl-sites", sites, "test");
  char path[] = "/tmp/mxguard-dnsbl-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = "# comment\ngreylist-dnsbl-sites = a.example, b.example=127.0.0.[1..x]\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  try {
    common::config::apply_file(path, b, nullptr);
    ADD_FAILURE() << "accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(std::string(path) + ":2"), std::string::npos) << e.what();
  }
  unlink(path);
}

TEST(DnsListsTest, AnswersOnlyCountInsideTheFilterAndFailuresAreErrors) {
  auto s = DnsListSite::parse("zen.example=127.0.0.[2..11]");
  EXPECT_EQ(list_status(s, answer(Status::kOk, {"127.0.0.4"})), ListStatus::kListed);
  EXPECT_EQ(list_status(s, answer(Status::kOk, {"127.0.0.1", "127.0.0.10"})), ListStatus::kListed);
  EXPECT_EQ(list_status(s, answer(Status::kOk, {"127.0.0.1"})), ListStatus::kNotListed);
  EXPECT_EQ(list_status(s, answer(Status::kOk, {"198.51.100.1"})), ListStatus::kNotListed);
  EXPECT_EQ(list_status(s, answer(Status::kNxDomain)), ListStatus::kNotListed);
  EXPECT_EQ(list_status(s, answer(Status::kNoData)), ListStatus::kNotListed);
  EXPECT_EQ(list_status(s, answer(Status::kServFail)), ListStatus::kError);
  EXPECT_EQ(list_status(s, answer(Status::kTimeout)), ListStatus::kError);
  EXPECT_EQ(list_status(s, answer(Status::kError)), ListStatus::kError);
}

// A table-driven Source: cached answers for some names, asynchronous ones (from another
// thread) for the rest.
class StubDns : public common::dns::Source {
 public:
  std::map<std::string, Answer> cache, network;
  std::vector<std::thread> threads;
  ~StubDns() override {
    for (auto& t : threads) t.join();
  }
  void resolve_async(std::string name, std::uint16_t, Callback cb) override {
    auto it = network.find(name);
    Answer a = it == network.end() ? answer(Status::kNxDomain) : it->second;
    threads.emplace_back([cb, a] { cb(a); });
  }
  std::optional<Answer> cached(std::string_view name, std::uint16_t) override {
    auto it = cache.find(std::string(name));
    if (it == cache.end()) return std::nullopt;
    return it->second;
  }
};

ListHits run(StubDns& dns, const std::vector<DnsListSite>& bl, const std::vector<DnsListSite>& wl,
             const char* client = "192.0.2.1") {
  boost::asio::thread_pool pool(1);
  std::promise<ListHits> p;
  auto caller = std::this_thread::get_id();
  std::atomic<bool> on_caller{false};
  lookup_lists(dns, pool, ip(client), bl, wl, "Q1", [&](ListHits h) {
    on_caller = std::this_thread::get_id() == caller;
    p.set_value(std::move(h));
  });
  auto h = p.get_future().get();
  pool.join();
  EXPECT_FALSE(on_caller) << "done ran inside lookup_lists";
  return h;
}

TEST(DnsListsTest, LookupListsReportsTheFirstListingOfEachKindAndFailsOpen) {
  StubDns dns;
  dns.cache["1.2.0.192.a.example"] = answer(Status::kOk, {"127.0.0.2"});    // cached
  dns.network["1.2.0.192.b.example"] = answer(Status::kOk, {"127.0.0.3"});  // async
  dns.network["1.2.0.192.bad.example"] = answer(Status::kServFail);         // fails open
  dns.network["1.2.0.192.wl.example"] = answer(Status::kOk, {"127.0.10.2"});
  auto sites = [](std::vector<const char*> v) {
    std::vector<DnsListSite> out;
    for (auto t : v) out.push_back(DnsListSite::parse(t));
    return out;
  };
  auto h = run(dns, sites({"bad.example", "b.example", "a.example"}), sites({"wl.example"}));
  EXPECT_EQ(h.dnsbl, "b.example");  // configured order, not answer order
  EXPECT_EQ(h.dnswl, "wl.example");
  auto only_bad = run(dns, sites({"bad.example"}), sites({"none.example"}));
  EXPECT_FALSE(only_bad.dnsbl);
  EXPECT_FALSE(only_bad.dnswl);
  // All from the cache, or nothing to look up: still never inside the call.
  auto cached = run(dns, sites({"a.example"}), {});
  EXPECT_EQ(cached.dnsbl, "a.example");
  auto nothing = run(dns, {}, {});
  EXPECT_FALSE(nothing.dnsbl);
}

}  // namespace
}  // namespace mxguard::policyd
