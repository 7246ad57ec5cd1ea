// Greylisting with postgrey's semantics on a shared Redis: the (client network, sender,
// recipient) triplet must be seen again after --greylist-delay and within
// --greylist-retry-window; passed triplets live --greylist-max-age since last seen; clients with
// N passed deliveries (counted at most once an hour) are auto-whitelisted. Every decision is one
// Lua script call, so several mxguard-policyd hosts sharing one Redis agree.
// Must never block a Postfix connection past the Redis timeout, and never fail closed unless
// --greylist-on-store-error says so.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/units.h"
#include "common/net/ip.h"
#include "common/policy/codec.h"
#include "common/redis/batcher.h"
#include "common/redis/pool.h"
#include "common/redis/script.h"
#include "policyd/whitelist.h"

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::policyd {

using namespace std::chrono_literals;

struct GreylistOptions {
  common::config::Duration delay{300s};
  common::config::Duration max_age{35 * 24h};
  common::config::Duration retry_window{2 * 24h};
  unsigned ipv4_prefix = 24;
  unsigned ipv6_prefix = 64;
  bool privacy = false;
  unsigned auto_whitelist_clients = 5;  // 0 disables
  std::string action = "DEFER_IF_PERMIT";
  // Our own words: postgrey's default points at postgrey's help page, which is not ours to
  // send senders to. %s (seconds left) and %r (recipient domain) still work in a custom text.
  std::string text = "Greylisted, please try again later";
  bool header = true;  // "X-Greylist: delayed N seconds by mxguard-policyd…" on the first pass
  // Built-in defaults may be missing (a warning); files the admin names must exist.
  std::vector<WhitelistFile> whitelist_clients{
      WhitelistFile::built_in("/etc/mxguard/whitelist_clients"),
      WhitelistFile::built_in("/etc/mxguard/whitelist_clients.local")};
  std::vector<WhitelistFile> whitelist_recipients{
      WhitelistFile::built_in("/etc/mxguard/whitelist_recipients"),
      WhitelistFile::built_in("/etc/mxguard/whitelist_recipients.local")};
  std::string on_store_error = "dunno";  // dunno | defer
  std::string hostname;                  // for the header; empty: this host's name
  // Pool-tolerant greylisting: when the client passes SPF for the sender's domain, the triplet
  // uses that domain instead of the client network, so a retry from another address of the
  // sender's pool is not greylisted again.
  bool spf_pass_by_domain = false;

  void bind(common::config::Binder& b);
  void validate() const;  // throws config::OptionError
};

// postgrey's do_sender_substitutions: BATV prvs= tags removed, +extension stripped, numeric
// words replaced by '#'. In addition (mxguard), SRS0/SRS1 addresses map to the original
// sender, so each forwarded message does not create a new triplet.
std::string normalize_sender(std::string_view sender);

// The triplet's identity: client network text, normalised sender, recipient (lower case).
struct Triplet {
  std::string client_net;  // "198.51.100.0", or the host address with prefix 32/128
  std::string client_ip;
  std::string sender;
  std::string recipient;
  // postgrey's key: lc("net/sender/recipient")
  std::string postgrey_key() const;
};

// Longest sender or recipient kept as written in a triplet key (RFC 5321 §4.5.3.1: a path is
// at most 256 octets); a longer one is keyed by "sha1:" and its hash.
inline constexpr std::size_t kMaxKeyPart = 256;

Triplet make_triplet(const common::net::IpAddress& client, std::string_view sender,
                     std::string_view recipient, const GreylistOptions& o,
                     std::string_view spf_passed_domain = {});

// Redis key layout (docs/ARCHITECTURE.md): one hash tag per client network so a decision's
// keys share a Cluster slot.
struct GreylistKeys {
  std::string triplet;  // <prefix>gl:{<net>}:t:<net/sender/recipient>  (privacy: sha1s)
  std::string awl;      // <prefix>gl:{<net>}:awl:<ip>
};
GreylistKeys make_keys(const Triplet& t, const std::string& prefix, bool privacy);

struct Decision {
  // kSkipped: selective greylisting decided not to greylist (greylist_selector.h).
  enum class Kind { kPass, kGreylist, kWhitelisted, kError, kSkipped };
  Kind kind = Kind::kPass;
  std::string action;  // the reply to Postfix (without "action=")
  std::string reason;  // for the log line
  long age = -1;       // seconds since the triplet was first seen (-1: unknown)
};

// Seconds since the epoch; injected so tests control time without sleeping.
using Clock = std::function<std::int64_t()>;
std::int64_t system_clock_seconds();

class Greylister {
 public:
  Greylister(GreylistOptions options, common::redis::Pool& redis, Clock clock);
  // spf_passed_domain: the sender domain the client passed SPF for (empty: none/unknown).
  Decision check(const common::policy::Request& req, const common::net::IpAddress& client,
                 std::string_view spf_passed_domain = {});
  // The asynchronous form: the whitelists are checked at once on the caller's thread, the
  // Redis call is queued on `batcher` (pipelined with other requests'), and done(decision) is
  // called exactly once: at once, or on the batcher's thread. A store error, a bad reply or a
  // breaker that is open become the configured on-store-error decision, as in check().
  void check_async(const common::policy::Request& req, const common::net::IpAddress& client,
                   std::string_view spf_passed_domain, common::redis::Batcher& batcher,
                   std::function<void(Decision)> done);
  const GreylistOptions& options() const { return options_; }
  // Manual whitelist entries from Redis (mxguard-grey whitelist add) are re-read at most this
  // often, so every MX honours a change within seconds without a Redis call per request.
  static constexpr std::chrono::seconds kDynamicWhitelistRefresh{10};

 private:
  // One decision's script call and what is needed to read its reply (the request may be gone
  // by then).
  struct Call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::string client_ip;
    std::string recipient;
    bool etrn = false;
    std::string instance;
  };
  std::optional<Decision> whitelisted(const common::policy::Request& req,
                                      const common::net::IpAddress& client);
  Call prepare(const common::policy::Request& req, const common::net::IpAddress& client,
               std::string_view spf_passed_domain) const;
  Decision decide(const Call& call, const common::redis::Reply& reply);
  Decision store_error(const std::string& what) const;
  bool dynamic_whitelisted(const common::net::IpAddress& client, std::string_view sender);
  bool first_time_for_instance(std::string_view instance);
  std::string format_text(long wait, std::string_view recipient, bool etrn) const;
  std::string header_value(long delay) const;

  GreylistOptions options_;
  common::redis::Pool& redis_;
  Clock clock_;
  ClientWhitelist clients_;
  RecipientWhitelist recipients_;
  std::string hostname_;

  std::mutex mutex_;  // guards the two caches below
  std::deque<std::string> instances_;
  std::int64_t dynamic_loaded_at_ = -1;
  std::vector<common::net::Cidr> dynamic_clients_;
  std::vector<std::string> dynamic_sender_domains_;
};

// The decision script, shared with mxguard-grey (which reads the same keys).
const common::redis::Script& greylist_script();

}  // namespace mxguard::policyd
