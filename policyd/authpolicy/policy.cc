// Implementation of mxguard-authpolicy's decisions (see policy.h).
#include "policyd/authpolicy/policy.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "common/util/strings.h"

namespace mxguard::policyd::authpolicy {
namespace {

namespace metrics = common::metrics;
using common::ratelimit::Limit;
using common::ratelimit::Mode;
using common::ratelimit::Subject;

metrics::Counter& store_errors() {
  static auto& c = metrics::Registry::global().counter(
      "mxguard_authpolicy_store_errors_total",
      "Decisions that could not reach Redis and allowed the login");
  return c;
}

metrics::Counter& blocks(const std::string& kind) {
  return metrics::Registry::global().counter("mxguard_authpolicy_blocks_total",
                                             "Subjects blocked after too many failed logins",
                                             {{"subject", kind}});
}

using mxguard::common::util::lower;

std::string text_field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return "";
  std::string v;
  if (it->is_string()) {
    v = it->get<std::string>();
  } else if (it->is_number() || it->is_boolean()) {
    v = it->dump();
  } else {
    throw RequestError(std::string("attribute '") + name + "' is not a string");
  }
  if (v.size() > kMaxFieldLength) v.resize(kMaxFieldLength);
  return v;
}

bool bool_field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) {
    std::string v = lower(it->get<std::string>());
    return v == "true" || v == "yes" || v == "1";
  }
  if (it->is_number_integer()) return it->get<long long>() != 0;
  throw RequestError(std::string("attribute '") + name + "' is not a boolean");
}

// Seconds, rounded up: Dovecot delays in whole seconds.
int whole_seconds(std::chrono::milliseconds d) {
  return static_cast<int>((d.count() + 999) / 1000);
}

std::vector<Limit> concat(std::vector<Limit> a, const std::vector<Limit>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

std::string_view command_name(AuthRequest::Command c) {
  return c == AuthRequest::Command::kAllow ? "allow" : "report";
}

AuthRequest parse_request(std::string_view command, std::string_view body) {
  AuthRequest r;
  if (command == "allow") {
    r.command = AuthRequest::Command::kAllow;
  } else if (command == "report") {
    r.command = AuthRequest::Command::kReport;
  } else {
    throw RequestError("command must be allow or report");
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw RequestError("body is not JSON");
  if (!j.is_object()) throw RequestError("body is not a JSON object");
  r.login = text_field(j, "login");
  r.pwhash = text_field(j, "pwhash");
  r.remote = text_field(j, "remote");
  r.device_id = text_field(j, "device_id");
  r.protocol = text_field(j, "protocol");
  r.session_id = text_field(j, "session_id");
  r.fail_type = text_field(j, "fail_type");
  r.success = bool_field(j, "success");
  r.policy_reject = bool_field(j, "policy_reject");
  r.tls = bool_field(j, "tls");
  return r;
}

std::string ip_key(const common::net::IpAddress& ip) { return "ap:ip:" + ip.to_string(); }

std::string net_key(const common::net::IpAddress& ip, unsigned v4_prefix, unsigned v6_prefix) {
  auto net = common::net::Cidr::parse(ip.to_string() + "/" +
                                      std::to_string(ip.is_v4() ? v4_prefix : v6_prefix));
  return "ap:net:" + net.to_string();
}

std::string login_key(std::string_view login) {
  return "ap:login:" + common::ratelimit::key_part(lower(login));
}

std::string pair_key(std::string_view login, std::string_view pwhash) {
  std::string both = lower(login);
  both.push_back('\0');
  both.append(pwhash);
  return "ap:pw:" + common::redis::sha1_hex(both);
}

// The subjects of one request, in the order the script gets them (pair first: kCountNew).
struct Policy::Subjects {
  std::vector<Subject> list;
  std::vector<std::string> kinds;  // "pw", "ip", "net", "login"
};

Policy::Policy(const Options& o, common::redis::Pool& redis, common::ratelimit::Clock clock)
    : options_(o),
      allow_networks_(o.allow_networks),
      ip_(concat(parse_limits(o.ip_tarpit, false), parse_limits(o.ip_limits, true))),
      net_(concat(parse_limits(o.net_tarpit, false), parse_limits(o.net_limits, true))),
      login_(concat(parse_limits(o.login_tarpit, false), parse_limits(o.login_limits, true))),
      repeat_(parse_limits(o.repeat_tarpit, false)),
      limiter_(redis, std::move(clock)) {}

Policy::Subjects Policy::subjects_for(const AuthRequest& r,
                                      const common::net::IpAddress* ip) const {
  Subjects s;
  auto block = options_.block_time.value;
  if (!r.pwhash.empty() && !repeat_.empty()) {
    s.list.push_back({pair_key(r.login, r.pwhash), repeat_, {}});
    s.kinds.push_back("pw");
  }
  if (ip != nullptr) {
    if (!ip_.empty()) {
      s.list.push_back({ip_key(*ip), ip_, block});
      s.kinds.push_back("ip");
    }
    if (!net_.empty()) {
      s.list.push_back({net_key(*ip, options_.ipv4_prefix, options_.ipv6_prefix), net_, block});
      s.kinds.push_back("net");
    }
  }
  if (!login_.empty()) {
    s.list.push_back({login_key(r.login), login_, block});
    s.kinds.push_back("login");
  }
  return s;
}

Verdict Policy::decide(const AuthRequest& r) {
  auto ip = common::net::IpAddress::parse(r.remote);
  if (ip && allow_networks_.contains(*ip)) {
    return {0, "", "allowlisted", "allow-networks"};
  }
  try {
    return r.command == AuthRequest::Command::kAllow ? allow(r, ip ? &*ip : nullptr)
                                                     : report(r, ip ? &*ip : nullptr);
  } catch (const common::redis::Error& ex) {
    // Redis unavailable (or refusing): Dovecot must keep working.
    store_errors().inc();
    return {0, "", "store-error", ex.what()};
  }
}

Verdict Policy::allow(const AuthRequest& r, const common::net::IpAddress* ip) {
  Subjects s = subjects_for(r, ip);
  if (s.list.empty()) return {0, "", "allow", "no limits"};
  return finish_allow(s, limiter_.hit(s.list, Mode::kPeek));
}

void Policy::allow_async(const AuthRequest& r, common::redis::Batcher& batcher,
                         VerdictCallback done) {
  auto ip = common::net::IpAddress::parse(r.remote);
  if (ip && allow_networks_.contains(*ip)) {
    return done(Verdict{0, "", "allowlisted", "allow-networks"}, nullptr);
  }
  auto s = std::make_shared<Subjects>(subjects_for(r, ip ? &*ip : nullptr));
  if (s->list.empty()) return done(Verdict{0, "", "allow", "no limits"}, nullptr);
  limiter_.peek_async(
      batcher, s->list,
      [this, s, done = std::move(done)](std::optional<common::ratelimit::Result> result,
                                        std::exception_ptr error) {
        // As decide(): Redis trouble allows the login; anything else is an internal error.
        std::optional<Verdict> v;
        std::exception_ptr internal;
        try {
          if (!result) {
            std::rethrow_exception(
                error ? error : std::make_exception_ptr(std::runtime_error("no peek result")));
          }
          v = finish_allow(*s, *result);
        } catch (const common::redis::Error& ex) {
          store_errors().inc();
          v = Verdict{0, "", "store-error", ex.what()};
        } catch (...) {
          internal = std::current_exception();
        }
        done(std::move(v), internal);
      });
}

Verdict Policy::finish_allow(const Subjects& s, const common::ratelimit::Result& result) const {
  for (std::size_t i = 0; i < s.list.size(); ++i) {
    const auto& st = result.subjects[i];
    if (st.blocked_for.count() > 0) {
      return {-1, options_.reject_message, "reject",
              s.kinds[i] + " blocked for " + std::to_string(whole_seconds(st.blocked_for)) + "s"};
    }
  }
  // Tarpit: tarpit-delay at a reached tarpit threshold, one more per failure beyond it.
  std::chrono::milliseconds delay{0};
  std::string why;
  for (std::size_t i = 0; i < s.list.size(); ++i) {
    const auto& limits = s.list[i].limits;
    for (std::size_t j = 0; j < limits.size(); ++j) {
      if (limits[j].blocks) continue;
      double count = std::floor(result.subjects[i].counts[j]);
      auto max = static_cast<double>(limits[j].max);
      if (count < max) continue;
      auto steps = static_cast<long long>(count - max) + 1;
      std::chrono::milliseconds d = std::min<std::chrono::milliseconds>(
          options_.tarpit_delay.value * steps, options_.tarpit_max_delay.value);
      if (d > delay) {
        delay = d;
        why = s.kinds[i] + " " + std::to_string(static_cast<long long>(count)) +
              " failures >= " + limits[j].to_string();
      }
    }
  }
  if (delay.count() > 0) return {whole_seconds(delay), "", "tarpit", why};
  return {0, "", "allow", "under limits"};
}

// What a report needs besides Redis: a verdict already, or a script call and its subjects.
struct Policy::PendingReport {
  std::optional<Verdict> done;
  Subjects subjects;
  Mode mode = Mode::kCount;
};

Policy::PendingReport Policy::prepare_report(const AuthRequest& r,
                                             const common::net::IpAddress* ip) {
  PendingReport p;
  if (r.success) {
    if (options_.reset_on_success && ip != nullptr) {
      limiter_.reset_counts(ip_key(*ip));
      p.done = Verdict{0, "", "success", "address counters reset"};
    } else {
      p.done = Verdict{0, "", "success", "login succeeded"};
    }
    return p;
  }
  if (r.policy_reject) {
    p.done = Verdict{0, "", "ignored", "rejected by this policy"};
    return p;
  }
  if (r.fail_type == "internal") {
    p.done = Verdict{0, "", "ignored", "internal failure"};
    return p;
  }
  p.subjects = subjects_for(r, ip);
  if (p.subjects.list.empty()) {
    p.done = Verdict{0, "", "ignored", "no limits"};
    return p;
  }
  bool with_pair = p.subjects.kinds[0] == "pw";
  p.mode = with_pair ? Mode::kCountNew : Mode::kCount;
  return p;
}

Verdict Policy::finish_report(const PendingReport& p, const common::ratelimit::Result& result) {
  std::string blocked;
  for (std::size_t i = 0; i < p.subjects.list.size(); ++i) {
    if (!result.subjects[i].newly_blocked) continue;
    const std::string& kind = p.subjects.kinds[i];
    blocks(kind).inc();
    blocked += (blocked.empty() ? "" : ",") + kind;
    common::log::warning("blocked " + kind + " " +
                         p.subjects.list[i].key.substr(3 + kind.size() + 1) + " for " +
                         std::to_string(whole_seconds(options_.block_time.value)) +
                         "s after too many failed logins");
  }
  if (result.repeat) return {0, "", "repeat", "same login and password hash as before"};
  if (!blocked.empty()) return {0, "", "blocked", blocked};
  return {0, "", "counted", "failed login"};
}

Verdict Policy::report(const AuthRequest& r, const common::net::IpAddress* ip) {
  PendingReport p = prepare_report(r, ip);
  if (p.done) return *p.done;
  return finish_report(p, limiter_.hit(p.subjects.list, p.mode));
}

std::vector<Verdict> Policy::report_batch(const std::vector<AuthRequest>& reqs) {
  std::vector<Verdict> out(reqs.size());
  std::vector<PendingReport> pending(reqs.size());
  std::vector<common::ratelimit::Hit> hits;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    try {
      auto ip = common::net::IpAddress::parse(reqs[i].remote);
      if (ip && allow_networks_.contains(*ip)) {
        out[i] = {0, "", "allowlisted", "allow-networks"};
        continue;
      }
      pending[i] = prepare_report(reqs[i], ip ? &*ip : nullptr);
    } catch (const common::redis::Error& ex) {
      store_errors().inc();
      out[i] = {0, "", "store-error", ex.what()};
      continue;
    }
    if (pending[i].done) {
      out[i] = *pending[i].done;
      continue;
    }
    hits.push_back({pending[i].subjects.list, pending[i].mode, 1});
    index.push_back(i);
  }
  if (hits.empty()) return out;
  try {
    auto results = limiter_.hit_batch(hits);
    for (std::size_t k = 0; k < hits.size(); ++k) {
      out[index[k]] = finish_report(pending[index[k]], results[k]);
    }
  } catch (const common::redis::Error& ex) {
    for (std::size_t i : index) {
      store_errors().inc();
      out[i] = {0, "", "store-error", ex.what()};
    }
  }
  return out;
}

}  // namespace mxguard::policyd::authpolicy
