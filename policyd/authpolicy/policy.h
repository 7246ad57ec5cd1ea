// mxguard-authpolicy's decisions, without HTTP: a Dovecot auth-policy request (JSON body and
// the `command` query parameter) becomes an AuthRequest, and Policy answers it from the shared
// rate limiter — failed logins counted per remote address, per remote network, per login and
// per (login, password hash), a tarpit (delay) then a block for --block-time. One Lua script
// call per decision. Must never reject because Redis is unavailable (Dovecot must keep working:
// the answer is allow, logged and counted), and never count the same wrong password retried as
// a new failure for the address and the login.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/net/ip.h"
#include "common/ratelimit/ratelimit.h"
#include "common/redis/batcher.h"
#include "common/redis/pool.h"
#include "policyd/authpolicy/options.h"

namespace mxguard::policyd::authpolicy {

// A request the protocol does not allow (not JSON, not an object, wrong types, unknown command):
// answered with HTTP 400.
class RequestError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The attributes of Dovecot 2.3's default auth_policy_request_attributes
// (login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} device_id=%{client_id}
// protocol=%s session_id=%{session}), plus what a report adds (success, policy_reject, fail_type)
// and tls.
struct AuthRequest {
  enum class Command { kAllow, kReport };
  Command command = Command::kAllow;
  std::string login;
  std::string pwhash;  // H(nonce || login || NUL || password), truncated (auth_policy_hash_*)
  std::string remote;
  std::string device_id;
  std::string protocol;
  std::string session_id;
  std::string fail_type;
  bool success = false;
  bool policy_reject = false;
  bool tls = false;
};

std::string_view command_name(AuthRequest::Command c);
// Fields longer than this are cut (they only end up in keys as hashes and in the log).
constexpr std::size_t kMaxFieldLength = 512;

// command: the `command` query value ("allow" | "report"). Throws RequestError.
AuthRequest parse_request(std::string_view command, std::string_view body);

// The answer to Dovecot and what the log line says about it.
struct Verdict {
  int status = 0;      // <0 reject, 0 allow, >0 delay in seconds
  std::string msg;     // the JSON "msg"
  std::string result;  // for the log and metrics: allow, tarpit, reject, allowlisted, counted,
                       // repeat, success, ignored, store-error
  std::string reason;  // what decided
};

// The subjects' key layout (docs/ARCHITECTURE.md): ap:ip:ADDR, ap:net:CIDR, ap:login:LOGIN,
// ap:pw:SHA1(login NUL pwhash); logins are lower-cased and made key-safe.
std::string ip_key(const common::net::IpAddress& ip);
std::string net_key(const common::net::IpAddress& ip, unsigned v4_prefix, unsigned v6_prefix);
std::string login_key(std::string_view login);
std::string pair_key(std::string_view login, std::string_view pwhash);

class Policy {
 public:
  Policy(const Options& o, common::redis::Pool& redis,
         common::ratelimit::Clock clock = common::ratelimit::system_clock_ms);
  // Never throws for Redis trouble (allow + store-error result); may throw std::exception for
  // internal errors, which the server answers with HTTP 500.
  Verdict decide(const AuthRequest& r);
  // Exactly one of the two is set: the verdict (Redis trouble included, as store-error), or an
  // internal error (which the server answers with HTTP 500).
  using VerdictCallback = std::function<void(std::optional<Verdict>, std::exception_ptr)>;
  // decide() for an allow without waiting on Redis: the reads go out through `batcher`,
  // pipelined with other requests' (common/redis/batcher.h), and `done` runs exactly once, on
  // a batcher thread, or inside this call when no Redis call is needed (allow-networks, no
  // limits) or the batcher refuses the call at once. The Policy must outlive the call: keep a
  // shared_ptr to it in `done`.
  void allow_async(const AuthRequest& r, common::redis::Batcher& batcher, VerdictCallback done);
  // Many reports in one Redis round trip (pipelined script calls); verdicts in order. Never
  // throws for Redis trouble (store-error verdicts).
  std::vector<Verdict> report_batch(const std::vector<AuthRequest>& reqs);
  common::ratelimit::Limiter& limiter() { return limiter_; }

 private:
  struct Subjects;
  struct PendingReport;
  PendingReport prepare_report(const AuthRequest& r, const common::net::IpAddress* ip);
  Verdict finish_report(const PendingReport& p, const common::ratelimit::Result& result);
  Subjects subjects_for(const AuthRequest& r, const common::net::IpAddress* ip) const;
  Verdict allow(const AuthRequest& r, const common::net::IpAddress* ip);
  Verdict finish_allow(const Subjects& s, const common::ratelimit::Result& result) const;
  Verdict report(const AuthRequest& r, const common::net::IpAddress* ip);

  Options options_;
  common::net::NetworkList allow_networks_;
  std::vector<common::ratelimit::Limit> ip_, net_, login_, repeat_;
  common::ratelimit::Limiter limiter_;
};

}  // namespace mxguard::policyd::authpolicy
