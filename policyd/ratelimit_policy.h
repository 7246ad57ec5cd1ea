// mxguard-policyd's outbound rate limits (check `ratelimit`): messages and recipients per
// window for each SASL user, and per sender domain for unauthenticated relays from
// --trusted-networks, on the shared limiter (common/ratelimit), so every MX sharing Redis counts
// together. Recipients are counted at RCPT, messages at END-OF-MESSAGE (Postfix sends that
// request only with check_policy_service in smtpd_end_of_data_restrictions). A request over a
// limit is answered --ratelimit-action with a text naming the limit; it is not counted.
// Must never reject mail because Redis is unavailable unless --ratelimit-on-store-error says so,
// and never alert more than once per user and window.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/policy/codec.h"
#include "common/ratelimit/ratelimit.h"
#include "common/redis/batcher.h"
#include "common/redis/pool.h"

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::policyd {

struct RateLimitOptions {
  std::vector<std::string> sasl_messages{"200/1h", "1000/1d"};
  std::vector<std::string> sasl_recipients{"1000/1h", "5000/1d"};
  std::vector<std::string> sender_messages{"2000/1h"};
  std::vector<std::string> sender_recipients{"10000/1h"};
  std::string action = "DEFER_IF_PERMIT";
  std::string text = "Rate limit exceeded for %u (%l), try again later";
  std::string on_store_error = "dunno";  // dunno | defer

  void bind(common::config::Binder& b);
  void validate() const;  // throws config::OptionError
};

struct RateDecision {
  enum class Kind { kNotApplicable, kPass, kOver, kError };
  Kind kind = Kind::kNotApplicable;
  std::string action;   // the reply (DUNNO when passed)
  std::string subject;  // "sasl:alice" / "sender:example.org"
  std::string reason;   // for the log line
};

class RateLimiter {
 public:
  // clock: milliseconds since the epoch.
  RateLimiter(RateLimitOptions options, common::redis::Pool& redis,
              common::ratelimit::Clock clock = common::ratelimit::system_clock_ms);
  // For a SASL-authenticated request, or an unauthenticated one from a trusted network
  // (`trusted`); kNotApplicable for anything else (inbound mail, other protocol states).
  RateDecision check(const common::policy::Request& req, bool trusted);
  // The same without waiting for Redis: a decision that needs no Redis (not applicable, no
  // limit) is returned, and `done` is never called; otherwise nullopt, and `done` runs exactly
  // once with the decision, on a batcher thread (inside this call only when the batcher
  // refuses the call at once). This RateLimiter must outlive `done` (policyd's Run holds it).
  std::optional<RateDecision> check_async(const common::policy::Request& req, bool trusted,
                                          common::redis::Batcher& batcher,
                                          std::function<void(RateDecision)> done);
  const RateLimitOptions& options() const { return options_; }

 private:
  // What a request needs: a decision already (`needs_redis` false), or one subject to consume.
  struct Prepared {
    RateDecision decision;
    bool needs_redis = false;
    common::ratelimit::Subject subject;
    const std::vector<common::ratelimit::Limit>* limits = nullptr;
    std::string what;          // recipients | messages
    std::string message_info;  // END-OF-MESSAGE: " (recipient_count=… size=…)"
    std::string queue_id;
  };
  Prepared prepare(const common::policy::Request& req, bool trusted) const;
  RateDecision decide(const Prepared& p, const common::ratelimit::Result& r);
  RateDecision store_error(const Prepared& p, const std::string& what) const;
  bool first_alert(const std::string& key, std::int64_t window_end);

  RateLimitOptions options_;
  std::vector<common::ratelimit::Limit> sasl_messages_, sasl_recipients_, sender_messages_,
      sender_recipients_;
  common::ratelimit::Limiter limiter_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> alerted_until_;  // subject → window end (ms)
};

}  // namespace mxguard::policyd
