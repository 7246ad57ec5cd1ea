// Differential test against the reference: the same Postfix policy requests go to postgrey 1.37
// (the Debian package, run privately on a free port with its own --dbdir, its clock set per
// request with policy_test_time) and to mxguard's PolicyService::handle with an injected clock
// at the same epochs and a private Redis. The actions must be the same, except the X-Greylist
// text (only "PREPEND" and the delayed seconds are compared) and SRS senders, which mxguard
// maps to the original sender on purpose (docs/ARCHITECTURE.md, "Departures").
// Must never touch the system postgrey, its /var/lib/postgrey or any process it did not start.
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/log/log.h"
#include "common/policy/codec.h"
#include "policyd/policy_service.h"
#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::testing {
namespace {

using namespace std::chrono_literals;
using Attrs = std::map<std::string, std::string>;

const std::string kPostgrey = "/usr/sbin/postgrey";
constexpr std::int64_t kStart = 1'700'000'000;  // 2023-11-14, any fixed epoch will do
constexpr std::int64_t kDelay = 60;
constexpr std::int64_t kRetryWindow = 2 * 24 * 3600;  // postgrey --retry-window=2 (days)
constexpr int kAutoWhitelist = 5;
// One %s and one %r: postgrey substitutes only the first of each.
const std::string kText = "Greylisted for %s seconds, see https://greylist.test/help/%r.html";

// A private postgrey: foreground (its log on stderr), our own user so no chown is needed,
// stopped by the pid we started.
class PostgreyServer {
 public:
  PostgreyServer(const TempDir& dir, const std::string& clients, const std::string& recipients)
      : port_(free_tcp_port()) {
    std::filesystem::create_directories(dir / "postgrey-db");
    const passwd* pw = ::getpwuid(::geteuid());
    const group* gr = ::getgrgid(::getegid());
    process_ = Process({kPostgrey, "--inet=127.0.0.1:" + std::to_string(port_),
                        "--dbdir=" + (dir / "postgrey-db").string(),
                        "--user=" + std::string(pw ? pw->pw_name : "root"),
                        "--group=" + std::string(gr ? gr->gr_name : "root"),
                        "--delay=" + std::to_string(kDelay), "--max-age=35", "--retry-window=2",
                        "--auto-whitelist-clients=" + std::to_string(kAutoWhitelist),
                        "--greylist-text=" + kText, "--hostname=postgrey.test",
                        "--whitelist-clients=" + clients, "--whitelist-recipients=" + recipients},
                       dir / "postgrey.log");
    if (!wait_for_tcp("127.0.0.1", port_, 15s)) {
      throw std::runtime_error("postgrey did not start:\n" + process_.log());
    }
    client_ = std::make_unique<PolicyClient>("127.0.0.1", port_);
  }
  std::string ask(const Attrs& attrs, std::int64_t now) {
    Attrs a = attrs;
    a["policy_test_time"] = std::to_string(now);  // postgrey's clock for this request only
    return client_->ask(a);
  }
  std::string log() const { return process_.log(); }

 private:
  int port_;
  Process process_;
  std::unique_ptr<PolicyClient> client_;
};

// mxguard's side: the service itself, with the clock set before every request.
class Mxguard {
 public:
  Mxguard(const RedisServer& redis, const std::string& clients, const std::string& recipients) {
    policyd::Options o;
    o.daemon.listen = "inet:127.0.0.1:" + std::to_string(free_tcp_port());  // never opened
    o.redis.url = redis.url();
    o.trusted_networks = {};  // postgrey has no such notion: compare greylisting alone
    o.greylist.delay = std::chrono::seconds(kDelay);
    o.greylist.max_age = std::chrono::hours(35 * 24);
    o.greylist.retry_window = std::chrono::seconds(kRetryWindow);
    o.greylist.auto_whitelist_clients = kAutoWhitelist;
    o.greylist.text = kText;
    o.greylist.hostname = "mxguard.test";
    o.greylist.whitelist_clients = {clients};
    o.greylist.whitelist_recipients = {recipients};
    // Hundreds of decision lines would bury a failure; the differences are printed instead.
    common::log::set_level(common::log::Level::kWarning);
    service_ = std::make_unique<policyd::PolicyService>(o, [this] { return now_.load(); });
  }
  std::string ask(const Attrs& attrs, std::int64_t now) {
    now_ = now;
    common::policy::Request r;
    for (const auto& [k, v] : attrs) r.set(k, v);
    return service_->handle(r);
  }

 private:
  std::atomic<std::int64_t> now_{kStart};
  std::unique_ptr<policyd::PolicyService> service_;
};

// One request at one simulated time. `expect` (optional) is the kind of answer the generator
// meant to provoke ("DEFER", "PREPEND", "DUNNO"): it keeps the comparison honest, since two
// servers answering DUNNO to everything would agree too.
struct Step {
  std::int64_t time = kStart;
  Attrs attrs;
  std::string expect;
  std::string what;  // for failure messages
};

Attrs rcpt(const std::string& ip, const std::string& sender, const std::string& recipient,
           const std::string& instance, const std::string& client_name = "unknown") {
  // What Postfix 3.7 sends at RCPT time (the subset both servers read, plus etrn_domain,
  // which Postfix always sends and which turns on the 4.2.0 workaround in both).
  return {{"request", "smtpd_access_policy"},
          {"protocol_state", "RCPT"},
          {"protocol_name", "ESMTP"},
          {"client_address", ip},
          {"client_name", client_name},
          {"reverse_client_name", client_name},
          {"helo_name", "helo.example"},
          {"sender", sender},
          {"recipient", recipient},
          {"queue_id", ""},
          {"instance", instance},
          {"etrn_domain", ""},
          {"size", "0"}};
}

// "PREPEND X-Greylist: delayed 61 seconds by postgrey-1.37 at …" → "PREPEND delayed 61";
// every other action is compared as is.
std::string comparable(const std::string& action) {
  static const std::regex prepend("PREPEND X-Greylist: delayed ([0-9]+) seconds by .*");
  std::smatch m;
  if (std::regex_match(action, m, prepend)) return "PREPEND delayed " + m[1].str();
  return action;
}

std::string kind(const std::string& action) {
  if (action.rfind("DEFER_IF_PERMIT ", 0) == 0) return "DEFER";
  if (action.rfind("PREPEND ", 0) == 0) return "PREPEND";
  return action;
}

class PostgreyDifferentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kPostgrey)) GTEST_SKIP() << kPostgrey << " is not installed";
    write_file(dir_ / "empty_clients", "");
    write_file(dir_ / "empty_recipients", "");
  }

  // Sends every step to both and returns the differences, one line each; counts kinds seen.
  std::vector<std::string> run(std::vector<Step> steps, const std::string& clients,
                               const std::string& recipients) {
    // Same-time steps keep their order (a message's recipients, a retry at an exact second).
    std::stable_sort(steps.begin(), steps.end(),
                     [](const Step& a, const Step& b) { return a.time < b.time; });
    PostgreyServer postgrey(dir_, clients, recipients);
    Mxguard mxguard(redis_, clients, recipients);
    std::vector<std::string> diffs;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const Step& s = steps[i];
      std::string p = postgrey.ask(s.attrs, s.time);
      std::string m = mxguard.ask(s.attrs, s.time);
      ++kinds_[kind(p)];
      auto get = [&s](const std::string& name) {
        auto it = s.attrs.find(name);
        return it == s.attrs.end() ? std::string("(absent)") : it->second;
      };
      std::ostringstream where;
      where << "#" << i << " t=+" << (s.time - kStart) << " " << s.what
            << " client=" << get("client_address") << " name=" << get("client_name") << " sender=<"
            << get("sender") << "> recipient=<" << get("recipient")
            << "> instance=" << get("instance");
      if (comparable(p) != comparable(m)) {
        diffs.push_back(where.str() + "\n    postgrey: " + p + "\n    mxguard:  " + m);
      }
      if (!s.expect.empty() && kind(p) != s.expect) {
        ADD_FAILURE() << "generator expected " << s.expect << " at " << where.str()
                      << "\n    postgrey: " << p << "\n    mxguard:  " << m;
      }
    }
    steps_run_ += steps.size();
    if (HasFailure()) std::cerr << "--- postgrey log:\n" << postgrey.log();
    return diffs;
  }

  static std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }

  TempDir dir_;
  RedisServer redis_;
  std::map<std::string, int> kinds_;
  std::size_t steps_run_ = 0;
};

// The generated sequence: a deterministic mix of every case postgrey's state machine and
// sender/client substitutions distinguish.
class SequenceBuilder {
 public:
  std::vector<Step> steps;

  // One delivery attempt (one SMTP transaction): a request per recipient, one instance.
  void attempt(std::int64_t t, const std::string& ip, const std::string& sender,
               const std::vector<std::string>& recipients, const std::vector<std::string>& expect,
               const std::string& what) {
    std::string instance = "5a3f." + std::to_string(++instances_) + ".0";
    for (std::size_t i = 0; i < recipients.size(); ++i) {
      steps.push_back(Step{t, rcpt(ip, sender, recipients[i], instance),
                           i < expect.size() ? expect[i] : "", what});
    }
  }
  void attempt(std::int64_t t, const std::string& ip, const std::string& sender,
               const std::string& recipient, const std::string& expect, const std::string& what) {
    attempt(t, ip, sender, std::vector<std::string>{recipient}, std::vector<std::string>{expect},
            what);
  }

  std::mt19937 rng{20240611};  // fixed: the sequence is the same on every run
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  }
  std::string tag() {  // a BATV tag-val: K DDD SSSSSS, lower-case alphanumerics
    static const char* chars = "0123456789abcdef";
    std::string t = "0" + std::to_string(uniform(100, 999));
    for (int i = 0; i < 6; ++i) t.push_back(chars[uniform(0, 15)]);
    return t;
  }

 private:
  int instances_ = 0;
};

// A sender as it shows up on one delivery attempt: the forms postgrey folds into one triplet
// (+ext, BATV tags in either order, VERP numbers, case) vary between attempts.
std::string sender_form(SequenceBuilder& b, int style, int i) {
  std::string user = "alice" + std::to_string(i);
  std::string domain = "sender" + std::to_string(i % 7) + ".example";
  switch (style) {
    case 0:
      return user + "@" + domain;
    case 1:
      return user + "+" + b.tag() + "@" + domain;
    case 2:
      return "prvs=" + b.tag() + "=" + user + "@" + domain;
    case 3:
      return "prvs=" + user + "=" + b.tag() + "@" + domain;
    case 4:
      return "bounce-" + std::to_string(b.uniform(1, 999999)) + "-" + user + "@lists.example";
    case 5:
      return "list-" + std::to_string(i) + "-request." + std::to_string(b.uniform(1, 99)) +
             "@lists.example";
    case 6:
      return b.uniform(0, 1)
                 ? "Alice" + std::to_string(i) + "@Sender" + std::to_string(i % 7) + ".EXAMPLE"
                 : user + "@" + domain;
    default:
      return "";  // the null sender (bounces)
  }
}

std::string recipient_form(SequenceBuilder& b, int i) {
  switch (b.uniform(0, 2)) {
    case 0:
      return "bob" + std::to_string(i) + "@rcpt.example";
    case 1:
      return "Bob" + std::to_string(i) + "@RCPT.example";
    default:
      return "BOB" + std::to_string(i) + "@Rcpt.Example";
  }
}

std::vector<Step> generated_sequence() {
  SequenceBuilder b;
  const std::int64_t d = kDelay;

  // Random triplets from a handful of /24s (siblings share triplets), each following one of
  // postgrey's paths. No expectations: a sibling may already have passed the same triplet.
  for (int i = 0; i < 120; ++i) {
    static const char* nets[] = {"198.51.100.", "198.18.7.", "198.18.8.", "100.64.3."};
    std::string ip = std::string(nets[b.uniform(0, 3)]) + std::to_string(b.uniform(1, 254));
    int style = static_cast<int>(b.uniform(0, 7));
    int who = static_cast<int>(b.uniform(0, 40));  // a small pool: some triplets repeat
    std::string rcpt = recipient_form(b, who % 13);
    std::int64_t t = kStart + b.uniform(0, 24 * 3600);
    b.attempt(t, ip, sender_form(b, style, who), rcpt, "", "random first");
    switch (b.uniform(0, 5)) {
      case 0:
        break;  // never retried
      case 1:   // early retry, then one after the delay, then seen again later
        b.attempt(t + b.uniform(1, d - 1), ip, sender_form(b, style, who),
                  recipient_form(b, who % 13), "", "random early retry");
        t += d + b.uniform(0, 3000);
        b.attempt(t, ip, sender_form(b, style, who), rcpt, "", "random retry");
        b.attempt(t + b.uniform(60, 86400), ip, sender_form(b, style, who), rcpt, "",
                  "random later");
        break;
      case 2:
        b.attempt(t + d + b.uniform(0, 600), ip, sender_form(b, style, who), rcpt, "",
                  "random retry");
        break;
      case 3:  // first retry after the retry window: starts over, then passes
        t += kRetryWindow + b.uniform(1, 7200);
        b.attempt(t, ip, sender_form(b, style, who), rcpt, "", "random retry too late");
        b.attempt(t + d + b.uniform(0, 60), ip, sender_form(b, style, who), rcpt, "",
                  "random retry after new start");
        break;
      case 4:  // the boundary: one second early, then exactly on time
        b.attempt(t + d - 1, ip, sender_form(b, style, who), rcpt, "", "random 1s early");
        b.attempt(t + d, ip, sender_form(b, style, who), rcpt, "", "random on time");
        break;
      default:  // retried from a sibling in the same /24
        ip = ip.substr(0, ip.rfind('.') + 1) + std::to_string(b.uniform(1, 254));
        b.attempt(t + d + b.uniform(1, 900), ip, sender_form(b, style, who), rcpt, "",
                  "random retry from a sibling");
    }
  }

  // Controlled cases with expectations, on address ranges of their own and later than the
  // random ones (which end before kStart + 2 days + 2 h + delays).
  std::int64_t t = kStart + 4 * 24 * 3600;

  // The state machine on one triplet.
  b.attempt(t, "192.0.2.10", "carol@s.example", "dave@r.example", "DEFER", "new");
  b.attempt(t + 1, "192.0.2.10", "carol@s.example", "dave@r.example", "DEFER", "early retry");
  b.attempt(t + d - 1, "192.0.2.10", "carol@s.example", "dave@r.example", "DEFER", "1 s early");
  b.attempt(t + d, "192.0.2.10", "carol@s.example", "dave@r.example", "PREPEND", "on time");
  b.attempt(t + d + 5, "192.0.2.10", "carol@s.example", "dave@r.example", "DUNNO", "known triplet");
  b.attempt(t + 30 * 24 * 3600, "192.0.2.10", "carol@s.example", "dave@r.example", "DUNNO",
            "known after 30 days (within max-age)");
  // Subnet siblings share triplets (/24); another /24 does not.
  b.attempt(t + 100, "192.0.2.200", "carol@s.example", "dave@r.example", "DUNNO", "sibling");
  b.attempt(t + 100, "192.0.3.10", "carol@s.example", "dave@r.example", "DEFER", "other network");
  // Retry window: first seen, first retry 2 days + 1 s later starts over.
  b.attempt(t, "192.0.2.20", "erin@s.example", "frank@r.example", "DEFER", "new");
  b.attempt(t + kRetryWindow + 1, "192.0.2.20", "erin@s.example", "frank@r.example", "DEFER",
            "after the retry window");
  b.attempt(t + kRetryWindow + 1 + d, "192.0.2.20", "erin@s.example", "frank@r.example", "PREPEND",
            "retry after the new start");
  // A retry exactly at the retry window still counts (postgrey: now - first > window).
  b.attempt(t, "192.0.2.21", "erin@s.example", "frank2@r.example", "DEFER", "new");
  b.attempt(t + kRetryWindow, "192.0.2.21", "erin@s.example", "frank2@r.example", "PREPEND",
            "at the retry window");

  // One message, three recipients: the header only on the first request of the instance.
  std::vector<std::string> three = {"g1@r.example", "G2@R.example", "g3@r.example"};
  b.attempt(t, "192.0.2.30", "list+123@s.example", three, {"DEFER", "DEFER", "DEFER"},
            "three recipients");
  b.attempt(t + d + 1, "192.0.2.30", "list+456@s.example", three, {"PREPEND", "DUNNO", "DUNNO"},
            "three recipients, retry");

  // Sender substitutions, each retry a different surface form of the first.
  struct Fold {
    std::string first, retry;
  };
  const std::vector<Fold> folds = {
      {"news+tag1@s.example", "news+other.tag@s.example"},
      {"prvs=0123abcdef=heidi@s.example", "prvs=0987fedcba=heidi@s.example"},
      {"prvs=ivan=0123abcdef@s.example", "prvs=ivan=0555aaaaaa@s.example"},
      {"bounce-123456-judy@lists.example", "bounce-98765-judy@lists.example"},
      {"bounces.12.34@lists.example", "bounces.56.78@lists.example"},
      {"Mallory@S.Example", "mallory@s.example"},
      {"", ""},                            // null sender
      {"MAILER-DAEMON", "MAILER-DAEMON"},  // no @: used as is
  };
  for (std::size_t i = 0; i < folds.size(); ++i) {
    std::string ip = "192.0.2." + std::to_string(40 + i);
    b.attempt(t, ip, folds[i].first, "oscar@r.example", "DEFER", "fold first");
    b.attempt(t + d, ip, folds[i].retry, "Oscar@R.Example", "PREPEND", "fold retry");
  }
  // …and forms that are different senders.
  b.attempt(t, "192.0.2.60", "peggy2024@s.example", "oscar@r.example", "DEFER", "word digits");
  b.attempt(t + d, "192.0.2.60", "peggy2025@s.example", "oscar@r.example", "DEFER",
            "word digits differ");

  // IPv6: the /64 is the network; the AWL key is the address.
  b.attempt(t, "2001:db8:1::5", "trent@s.example", "oscar@r.example", "DEFER", "v6 new");
  b.attempt(t + d, "2001:db8:1::ffff", "trent@s.example", "oscar@r.example", "PREPEND",
            "v6 sibling");
  b.attempt(t + d, "2001:db8:1:1::5", "trent@s.example", "oscar@r.example", "DEFER",
            "v6 other /64");
  b.attempt(t + d, "2001:db8:1::5", "trent@s.example", "oscar@r.example", "DUNNO", "v6 known");

  // Auto-whitelisting: five first passes at least an hour apart whitelist the address (not its
  // /24); a pass within the same hour and re-seen known triplets do not count.
  std::int64_t a = t + 3600;
  for (int k = 0; k < 7; ++k) {
    std::string r = "user" + std::to_string(k) + "@awl.example";
    std::int64_t tk = a + k * 2 * 3600;
    bool whitelisted = k >= kAutoWhitelist;
    b.attempt(tk, "203.0.113.5", "victor@s.example", r, whitelisted ? "DUNNO" : "DEFER",
              "awl first " + std::to_string(k));
    b.attempt(tk + d, "203.0.113.5", "victor@s.example", r, whitelisted ? "DUNNO" : "PREPEND",
              "awl retry " + std::to_string(k));
    if (k == 1) {  // a second pass in the same hour: not counted
      b.attempt(tk, "203.0.113.5", "walter@s.example", r, "DEFER", "awl same hour first");
      b.attempt(tk + d + 10, "203.0.113.5", "walter@s.example", r, "PREPEND",
                "awl same hour retry");
      b.attempt(tk + d + 20, "203.0.113.5", "walter@s.example", r, "DUNNO", "awl known");
    }
  }
  std::int64_t after = a + 7 * 2 * 3600;
  b.attempt(after, "203.0.113.5", "new@elsewhere.example", "zed@r.example", "DUNNO",
            "awl: a new triplet");
  b.attempt(after, "203.0.113.6", "new@elsewhere.example", "zed@r.example", "DEFER",
            "awl: not the neighbour");
  b.attempt(after, "2001:db8:9::1", "new@elsewhere.example", "zed@r.example", "DEFER",
            "awl: v6 new");
  return b.steps;
}

TEST_F(PostgreyDifferentialTest, GeneratedSequenceGivesTheSameActions) {
  auto steps = generated_sequence();
  ASSERT_GE(steps.size(), 300u);
  auto diffs = run(steps, (dir_ / "empty_clients").string(), (dir_ / "empty_recipients").string());
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " of " << steps_run_ << " actions differ:\n"
                             << joined(diffs);
  std::cout << steps_run_ << " requests: " << kinds_["DEFER"] << " DEFER_IF_PERMIT, "
            << kinds_["PREPEND"] << " PREPEND, " << kinds_["DUNNO"] << " DUNNO\n";
  // Every kind of answer occurred often enough for the comparison to mean something.
  EXPECT_GE(kinds_["DEFER"], 100) << kinds_["DEFER"];
  EXPECT_GE(kinds_["PREPEND"], 40) << kinds_["PREPEND"];
  EXPECT_GE(kinds_["DUNNO"], 30) << kinds_["DUNNO"];
}

// Senders rewritten by SRS: postgrey sees a new sender per message (hash and timestamp
// change), mxguard the original sender (docs/ARCHITECTURE.md) — the one intended difference.
TEST_F(PostgreyDifferentialTest, SrsSendersDifferAsDocumented) {
  PostgreyServer postgrey(dir_, (dir_ / "empty_clients").string(),
                          (dir_ / "empty_recipients").string());
  Mxguard mxguard(redis_, (dir_ / "empty_clients").string(), (dir_ / "empty_recipients").string());
  auto first = rcpt("192.0.2.99", "SRS0=HHH1=TT=orig.example=alice@forwarder.example",
                    "bob@r.example", "srs.1");
  auto retry = rcpt("192.0.2.99", "SRS0=HHH2=UU=orig.example=alice@forwarder.example",
                    "bob@r.example", "srs.2");
  EXPECT_EQ(kind(postgrey.ask(first, kStart)), "DEFER");
  EXPECT_EQ(kind(mxguard.ask(first, kStart)), "DEFER");
  EXPECT_EQ(kind(postgrey.ask(retry, kStart + kDelay)), "DEFER");   // a new triplet
  EXPECT_EQ(kind(mxguard.ask(retry, kStart + kDelay)), "PREPEND");  // the same original sender
}

// Postgrey's stock whitelist files (Debian package): a client named in them, by host name,
// regular expression or address, is never greylisted by either; near misses are.
class DebianWhitelists {
 public:
  std::vector<Step> steps;
  std::vector<std::string> unmatched;  // regex entries we could not derive a name for
  std::size_t names = 0, regexes = 0, addresses = 0;

  void add(const std::string& ip, const std::string& name, const std::string& expect,
           const std::string& what) {
    ++n_;
    steps.push_back(
        Step{kStart,
             rcpt(ip, "sender" + std::to_string(n_) + "@s.example",
                  "rcpt" + std::to_string(n_) + "@r.example", "wl." + std::to_string(n_), name),
             expect, what});
  }

 private:
  int n_ = 0;
};

// A host name matching a whitelist regex of the kinds Debian's file uses, or "" if unsure.
std::string example_for(std::string re) {
  static const std::vector<std::pair<std::regex, std::string>> rewrites = {
      {std::regex(R"(^\^|\$$)"), ""},
      {std::regex(R"(\(\?:([^|)]*)(\|[^)]*)?\))"), "$1"},  // first alternative
      {std::regex(R"(\\d\+|\\d|\[0-9\]\+|\[0-9\])"), "7"},
      {std::regex(R"(\\w\*)"), ""},
      {std::regex(R"(\.\*\??)"), "x"},
      {std::regex(R"(\[(.)[^\]]*\])"), "$1"},  // a class: its first character
      {std::regex(R"(.\?)"), ""},              // an optional character: leave it out
      {std::regex(R"(\\\.)"), "."},
  };
  std::regex original(re, std::regex::ECMAScript | std::regex::icase);
  for (const auto& [from, to] : rewrites) re = std::regex_replace(re, from, to);
  return std::regex_search(re, original) ? re : "";
}

TEST_F(PostgreyDifferentialTest, DebianWhitelistFilesWhitelistTheSameClients) {
  const std::string clients = "/etc/postgrey/whitelist_clients";
  const std::string recipients = "/etc/postgrey/whitelist_recipients";
  if (!std::filesystem::exists(clients)) GTEST_SKIP() << clients << " is not installed";
  DebianWhitelists w;
  std::ifstream in(clients);
  const std::string outside = "198.18.200.";  // in none of the files
  int host = 1;
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    line.erase(0, line.find_first_not_of(" \t"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty()) continue;
    std::string ip = outside + std::to_string(host++ % 250 + 1);
    if (line.size() > 2 && line.front() == '/' && line.back() == '/') {
      std::string name = example_for(line.substr(1, line.size() - 2));
      if (name.empty()) {
        w.unmatched.push_back(line);
        continue;
      }
      ++w.regexes;
      w.add(ip, name, "DUNNO", "regex " + line);
    } else if (line.find(':') != std::string::npos) {  // IPv6 network: its ::1
      ++w.addresses;
      w.add(line.substr(0, line.find("::")) + "::1", "unknown", "DUNNO", "v6 " + line);
    } else if (std::regex_match(line, std::regex(R"([0-9./]+)"))) {
      ++w.addresses;
      std::string addr = line.substr(0, line.find('/'));
      int dots = static_cast<int>(std::count(addr.begin(), addr.end(), '.'));
      if (dots == 2) addr += ".7";  // a.b.c: the /24
      if (line.find('/') != std::string::npos) addr = addr.substr(0, addr.rfind('.')) + ".1";
      w.add(addr, "unknown", "DUNNO", "address " + line);
    } else {
      ++w.names;
      w.add(ip, line, "DUNNO", "name " + line);
      w.add(ip, "mx-7.out." + line, "DUNNO", "subdomain of " + line);
      w.add(ip, "x" + line, "DEFER", "near miss of " + line);  // not a subdomain
    }
  }
  // Recipients: postmaster@ and abuse@ in any domain, with +ext, any case.
  w.add("198.18.201.1", "unknown", "DUNNO", "recipient");
  w.steps.back().attrs["recipient"] = "postmaster@r.example";
  w.add("198.18.201.1", "unknown", "DUNNO", "recipient");
  w.steps.back().attrs["recipient"] = "Abuse+reports@R.Example";
  w.add("198.18.201.1", "unknown", "DEFER", "recipient near miss");
  w.steps.back().attrs["recipient"] = "xabuse@r.example";
  // Control: an unlisted client is greylisted.
  w.add("198.18.201.2", "mail.unlisted.example", "DEFER", "control");

  EXPECT_GE(w.names, 80u);
  EXPECT_GE(w.regexes, 30u);
  EXPECT_GE(w.addresses, 20u);
  EXPECT_LE(w.unmatched.size(), 5u) << joined(w.unmatched);
  auto diffs = run(w.steps, clients, recipients);
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " of " << steps_run_ << " actions differ:\n"
                             << joined(diffs);
}

}  // namespace
}  // namespace mxguard::testing
