// Implementation of mxguard-policyd's outbound rate limits (see ratelimit_policy.h).
#include "policyd/ratelimit_policy.h"

#include <cctype>

#include "common/config/config.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "common/util/strings.h"

namespace mxguard::policyd {
namespace {

using common::ratelimit::Limit;

std::vector<Limit> parse(const std::vector<std::string>& texts) {
  std::vector<Limit> out;
  for (const auto& t : texts) out.push_back(Limit::parse(t));
  return out;
}

using mxguard::common::util::lower;

common::metrics::Counter& exceeded(const std::string& what) {
  return common::metrics::Registry::global().counter("mxguard_policyd_ratelimit_exceeded_total",
                                                     "Requests over an outbound rate limit",
                                                     {{"what", what}});
}

common::metrics::Counter& store_errors() {
  static auto& c = common::metrics::Registry::global().counter(
      "mxguard_policyd_ratelimit_store_errors_total",
      "Rate-limit checks that could not reach Redis and used --ratelimit-on-store-error");
  return c;
}

}  // namespace

void RateLimitOptions::bind(common::config::Binder& b) {
  b.add("ratelimit-sasl-messages", sasl_messages,
        "messages per SASL user (COUNT/WINDOW list), counted at END-OF-MESSAGE");
  b.add("ratelimit-sasl-recipients", sasl_recipients, "recipients per SASL user, counted at RCPT");
  b.add("ratelimit-sender-messages", sender_messages,
        "messages per sender domain from trusted networks without SASL");
  b.add("ratelimit-sender-recipients", sender_recipients,
        "recipients per sender domain from trusted networks without SASL");
  b.add("ratelimit-action", action, "action over a limit (DEFER_IF_PERMIT, DEFER, REJECT, 4xx…)");
  b.add("ratelimit-text", text, "reply text; %u = user or domain, %l = the limit exceeded");
  b.add("ratelimit-on-store-error", on_store_error,
        "when Redis is unavailable: dunno (send anyway) or defer");
}

void RateLimitOptions::validate() const {
  using common::config::OptionError;
  auto check = [](const char* name, const std::vector<std::string>& v) {
    try {
      parse(v);
    } catch (const std::invalid_argument& ex) {
      throw OptionError(name, ex.what());
    }
  };
  check("ratelimit-sasl-messages", sasl_messages);
  check("ratelimit-sasl-recipients", sasl_recipients);
  check("ratelimit-sender-messages", sender_messages);
  check("ratelimit-sender-recipients", sender_recipients);
  if (action.empty() || action.find_first_of("\r\n") != std::string::npos) {
    throw OptionError("ratelimit-action", "one word such as DEFER_IF_PERMIT");
  }
  if (text.find_first_of("\r\n") != std::string::npos) {
    throw OptionError("ratelimit-text", "must be one line");
  }
  if (on_store_error != "dunno" && on_store_error != "defer") {
    throw OptionError("ratelimit-on-store-error", "dunno or defer");
  }
}

RateLimiter::RateLimiter(RateLimitOptions options, common::redis::Pool& redis,
                         common::ratelimit::Clock clock)
    : options_(std::move(options)),
      sasl_messages_(parse(options_.sasl_messages)),
      sasl_recipients_(parse(options_.sasl_recipients)),
      sender_messages_(parse(options_.sender_messages)),
      sender_recipients_(parse(options_.sender_recipients)),
      limiter_(redis, std::move(clock)) {}

bool RateLimiter::first_alert(const std::string& key, std::int64_t window_end) {
  std::lock_guard lock(mutex_);
  auto now = limiter_.clock()();
  if (alerted_until_.size() > 100000) alerted_until_.clear();  // bounded
  auto& until = alerted_until_[key];
  if (now < until) return false;
  until = window_end;
  return true;
}

RateLimiter::Prepared RateLimiter::prepare(const common::policy::Request& req, bool trusted) const {
  Prepared p;
  RateDecision& d = p.decision;
  std::string state(req.protocol_state());
  bool rcpt = state == "RCPT";
  bool eom = state == "END-OF-MESSAGE";
  if (!rcpt && !eom) return p;
  std::string sasl = lower(req.get("sasl_username"));
  std::string who;
  if (!sasl.empty()) {
    who = "sasl:" + sasl;
    p.limits = rcpt ? &sasl_recipients_ : &sasl_messages_;
  } else if (trusted) {
    std::string sender = lower(req.sender());
    auto at = sender.rfind('@');
    if (at == std::string::npos || at + 1 == sender.size()) return p;  // null sender: bounces
    who = "sender:" + sender.substr(at + 1);
    p.limits = rcpt ? &sender_recipients_ : &sender_messages_;
  } else {
    return p;
  }
  d.subject = who;
  if (p.limits->empty()) {
    d.kind = RateDecision::Kind::kPass;
    d.action = "DUNNO";
    d.reason = "no limit";
    return p;
  }
  p.needs_redis = true;
  p.what = rcpt ? "recipients" : "messages";
  // END-OF-MESSAGE says what the message was: logged with the decision (the reason field).
  if (eom) {
    p.message_info = " (recipient_count=" + std::string(req.get("recipient_count")) +
                     " size=" + std::string(req.get("size")) + ")";
  }
  p.subject = common::ratelimit::Subject{
      "pd:" + common::ratelimit::key_part(who) + (rcpt ? ":r" : ":m"), *p.limits, {}};
  p.queue_id = req.queue_id().empty() ? "NOQUEUE" : std::string(req.queue_id());
  return p;
}

RateDecision RateLimiter::decide(const Prepared& p, const common::ratelimit::Result& r) {
  RateDecision d = p.decision;
  if (r.counted) {
    d.kind = RateDecision::Kind::kPass;
    d.action = "DUNNO";
    d.reason = p.what + " within limits" + p.message_info;
    return d;
  }
  const auto& st = r.subjects[0];
  std::size_t i = st.reached.value_or(0);
  const Limit& l = (*p.limits)[i];
  std::string limit_text =
      std::to_string(l.max) + " " + p.what + " per " + Limit{1, l.window}.to_string().substr(2);
  // Left to right over the template only: a user name or domain containing "%u" or "%l" is
  // inserted as it is, never expanded again.
  const std::string& who = d.subject;
  std::string user = who.substr(who.find(':') + 1);
  std::string text;
  const std::string& tmpl = options_.text;
  for (std::size_t k = 0; k < tmpl.size(); ++k) {
    char next = k + 1 < tmpl.size() ? tmpl[k + 1] : '\0';
    if (tmpl[k] == '%' && (next == 'u' || next == 'l' || next == '%')) {
      text += next == 'u' ? user : next == 'l' ? limit_text : "%";
      ++k;
      continue;
    }
    text += tmpl[k];
  }
  d.kind = RateDecision::Kind::kOver;
  d.action = options_.action + (text.empty() ? "" : " " + text);
  d.reason = p.what + " over " + l.to_string() + p.message_info;
  exceeded(p.what).inc();
  auto now = limiter_.clock()();
  auto window_end = now - now % l.window.count() + l.window.count();
  if (first_alert(p.subject.key + "/" + l.to_string(), window_end)) {
    common::log::warning(p.queue_id + ": ratelimit: " + who + " exceeded " + limit_text +
                         "; further mail is deferred until the window has room (logged once "
                         "per window)");
  }
  return d;
}

RateDecision RateLimiter::store_error(const Prepared& p, const std::string& what) const {
  store_errors().inc();
  RateDecision d = p.decision;
  d.kind = RateDecision::Kind::kError;
  d.action = options_.on_store_error == "defer"
                 ? "DEFER_IF_PERMIT 4.3.0 Service temporarily unavailable"
                 : "DUNNO";
  d.reason = "store error: " + what;
  return d;
}

RateDecision RateLimiter::check(const common::policy::Request& req, bool trusted) {
  Prepared p = prepare(req, trusted);
  if (!p.needs_redis) return p.decision;
  try {
    return decide(p, limiter_.hit({p.subject}, common::ratelimit::Mode::kConsume));
  } catch (const common::redis::Error& ex) {
    return store_error(p, ex.what());
  }
}

std::optional<RateDecision> RateLimiter::check_async(const common::policy::Request& req,
                                                     bool trusted, common::redis::Batcher& batcher,
                                                     std::function<void(RateDecision)> done) {
  Prepared p = prepare(req, trusted);
  if (!p.needs_redis) return p.decision;
  std::vector<common::ratelimit::Subject> subjects{p.subject};
  limiter_.hit_async(batcher, std::move(subjects), common::ratelimit::Mode::kConsume, 1,
                     [this, p = std::move(p), done = std::move(done)](
                         std::optional<common::ratelimit::Result> r, std::exception_ptr error) {
                       if (r) return done(decide(p, *r));
                       if (!error) return done(store_error(p, "no reply"));
                       try {
                         std::rethrow_exception(error);
                       } catch (const std::exception& ex) {
                         // A reply that is not the script's is as unusable as none: the same
                         // outcome.
                         done(store_error(p, ex.what()));
                       }
                     });
  return std::nullopt;
}

}  // namespace mxguard::policyd
