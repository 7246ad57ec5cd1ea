// RFC 7208 check_host() as a coroutine over the asynchronous resolver (see spf.h). One
// evaluation's state lives in a Context; every DNS lookup suspends the coroutine and the
// resolver's thread resumes it, so no thread waits on DNS.
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>

#include "common/spf/record.h"
#include "common/spf/spf.h"
#include "common/spf/task.h"
#include "common/util/strings.h"

namespace mxguard::common::spf {
namespace {

using detail::Task;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxDomain = 253;  // §4.3, §4.6.4
// Only the rightmost 253 octets of an expanded domain-spec survive truncation, and one more
// tells whether a label starts there: expansion stops once it has that many.
constexpr std::size_t kDomainTail = kMaxDomain + 1;

// Thrown inside an evaluation to end it with that result (limits, DNS errors, syntax).
struct Abort {
  Result result;
  std::string problem;
};

using mxguard::common::util::lower;

std::vector<std::string> split_any(std::string_view s, std::string_view delims) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (delims.find(c) != std::string_view::npos) {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(std::move(cur));
  return out;
}

std::string url_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

// §4.6.4: the expanded name is cut from the left, label by label, to at most 253 octets. One
// pass from the right: the longest suffix of at most 253 octets that starts a label survives.
// A name without such a suffix (a last label run of 254+ octets) is returned over-long, and
// the caller's validity check refuses it.
std::string truncate_domain(std::string d) {
  if (d.size() <= kMaxDomain) return d;
  auto dot = d.find('.', d.size() - kMaxDomain - 1);
  if (dot == std::string::npos) return d.substr(d.size() - kMaxDomain - 1);
  return d.substr(dot + 1);
}

bool is_subdomain_or_equal(std::string_view name, std::string_view domain) {
  std::string n = lower(name), d = lower(domain);
  if (!n.empty() && n.back() == '.') n.pop_back();
  if (!d.empty() && d.back() == '.') d.pop_back();
  return n == d || (n.size() > d.size() && n.ends_with("." + d));
}

// A name as unbound's string API expects it: expanded SPF targets may hold any octet (§7.1
// allows spaces through %_), so special characters are escaped as \DDD.
std::string presentation(std::string_view name) {
  std::string out;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    bool plain = u > 0x20 && u < 0x7f && c != '"' && c != '(' && c != ')' && c != ';' &&
                 c != '\\' && c != '@' && c != '$';
    if (plain) {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(u));
      out += buf;
    }
  }
  return out;
}

// The resolver's callback resumes the coroutine; the answer lands in the awaiter first.
struct LookupAwaiter {
  dns::Source& resolver;
  std::string name;
  std::uint16_t type;
  dns::Answer answer;

  // A fresh answer from the resolver's own cache: no suspension, no thread hop.
  bool await_ready() {
    if (auto hit = resolver.cached(name, type)) {
      answer = std::move(*hit);
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    resolver.resolve_async(name, type, [this, h](dns::Answer a) {
      answer = std::move(a);
      h.resume();
    });
  }
  dns::Answer await_resume() { return std::move(answer); }
};

struct Context {
  dns::Source& resolver;
  const Limits& limits;
  const std::string& default_explanation;
  Request req;
  Clock::time_point deadline;
  int dns_terms = 0;
  int void_lookups = 0;
  std::optional<std::string> validated_ptr;  // %{p}, looked up once

  LookupAwaiter lookup(std::string name, std::uint16_t type) {
    if (Clock::now() >= deadline) throw Abort{Result::kTemperror, "SPF time budget exhausted"};
    return LookupAwaiter{resolver, presentation(name), type, {}};
  }

  void count_dns_term() {
    if (++dns_terms > limits.max_dns_terms) {
      throw Abort{Result::kPermerror,
                  "more than " + std::to_string(limits.max_dns_terms) + " DNS-querying terms"};
    }
  }

  // A lookup answered NXDOMAIN or with no records: §4.6.4 allows two per check.
  void count_void(const dns::Answer& a) {
    if (a.status == dns::Status::kNxDomain || a.status == dns::Status::kNoData) {
      if (++void_lookups > limits.max_void_lookups) {
        throw Abort{Result::kPermerror,
                    "more than " + std::to_string(limits.max_void_lookups) + " void DNS lookups"};
      }
    }
  }

  static void require_ok_or_empty(const dns::Answer& a, const std::string& name) {
    if (a.status == dns::Status::kServFail || a.status == dns::Status::kTimeout ||
        a.status == dns::Status::kError) {
      throw Abort{Result::kTemperror,
                  "DNS " + std::string(dns::status_name(a.status)) + " for " + name};
    }
  }

  std::uint16_t address_type() const { return req.ip.is_v4() ? dns::kTypeA : dns::kTypeAaaa; }

  bool address_matches(const std::string& text, int cidr4, int cidr6) const {
    auto addr = net::IpAddress::parse(text);
    if (!addr || addr->family() != req.ip.family()) return false;
    int prefix = req.ip.is_v4() ? cidr4 : cidr6;
    return net::Cidr(*addr, prefix).contains(req.ip);
  }

  std::string macro_value(char letter, const std::string& domain) {
    auto at = req.sender.rfind('@');
    switch (letter) {
      case 's':
        return req.sender;
      case 'l': {
        std::string l = at == std::string::npos ? std::string() : req.sender.substr(0, at);
        return l.empty() ? "postmaster" : l;
      }
      case 'o':
        return at == std::string::npos ? req.sender : req.sender.substr(at + 1);
      case 'd':
        return domain;
      case 'i': {
        if (req.ip.is_v4()) return req.ip.to_string();
        std::string out;
        // Upper-case nibbles, as the reference implementation (pyspf) writes them.
        static constexpr char kHex[] = "0123456789ABCDEF";
        for (int i = 0; i < 16; ++i) {
          if (i) out.push_back('.');
          out.push_back(kHex[req.ip.bytes()[i] >> 4]);
          out.push_back('.');
          out.push_back(kHex[req.ip.bytes()[i] & 15]);
        }
        return out;
      }
      case 'p':
        return validated_ptr.value_or("unknown");
      case 'v':
        return req.ip.is_v4() ? "in-addr" : "ip6";
      case 'h':
        return req.helo;
      case 'c':
        return req.ip.to_string();
      case 'r':
        return req.receiver.empty() ? "unknown" : req.receiver;
      case 't':
        return std::to_string(std::time(nullptr));
      default:
        return "";
    }
  }

  // %{p} needs the validated PTR name: resolved once per check, before expanding.
  Task<bool> prepare_ptr(const MacroString& ms, const std::string& domain) {
    if (ms.uses('p') && !validated_ptr) validated_ptr = co_await validated_name(domain);
    co_return true;
  }

  std::string macro_text(const MacroPart& p, const std::string& domain) {
    if (p.literal) return p.text;
    std::string value = macro_value(p.letter, domain);
    if (p.digits > 0 || p.reverse || !p.delimiters.empty()) {
      auto parts = split_any(value, p.delimiters.empty() ? "." : p.delimiters);
      if (p.reverse) std::reverse(parts.begin(), parts.end());
      std::size_t keep = parts.size();
      if (p.digits > 0 && static_cast<std::size_t>(p.digits) < keep) keep = p.digits;
      value.clear();
      for (std::size_t i = parts.size() - keep; i < parts.size(); ++i) {
        if (!value.empty() || i > parts.size() - keep) value.push_back('.');
        value += parts[i];
      }
    }
    return p.url_escape ? url_escape(value) : value;
  }

  // A domain-spec's expansion, of which only the last kDomainTail octets are built: the parts
  // are expanded from the right and the work stops there, so a record of thousands of %{d}
  // costs no more than one name (the review measured 20 s for a 32 KB record before).
  std::string expand_domain(const MacroString& ms, const std::string& domain) {
    std::vector<std::string> pieces;  // right to left
    std::size_t have = 0;
    for (auto it = ms.parts.rbegin(); it != ms.parts.rend() && have < kDomainTail; ++it) {
      pieces.push_back(macro_text(*it, domain));
      have += pieces.back().size();
    }
    std::string out;
    out.reserve(have);
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) out += *it;
    if (out.size() > kDomainTail) out.erase(0, out.size() - kDomainTail);
    return out;
  }

  // Explanation text, at most `limit` octets; nullopt when longer (§6.2 lets a bad
  // explanation be ignored; the caller falls back to the default).
  std::optional<std::string> expand_text(const MacroString& ms, const std::string& domain,
                                         std::size_t limit) {
    std::string out;
    for (const auto& p : ms.parts) {
      out += macro_text(p, domain);
      if (out.size() > limit) return std::nullopt;
    }
    return out;
  }

  // The expanded target of a mechanism or redirect; nullopt when the expansion is not a name
  // that can be queried (an empty or over-long label): such a mechanism does not match.
  Task<std::optional<std::string>> target(const std::optional<MacroString>& spec,
                                          const std::string& domain) {
    if (!spec) co_return domain;
    co_await prepare_ptr(*spec, domain);
    std::string name = truncate_domain(expand_domain(*spec, domain));
    if (!valid_dns_name(name)) co_return std::nullopt;
    co_return name;
  }

  // PTR names of the client that resolve back to it (§5.5); the one equal to or under
  // `domain` first. Empty when none. DNS errors make names simply not validate.
  Task<std::optional<std::string>> validated_name(const std::string& domain) {
    dns::Answer ptr = co_await lookup(req.ip.reverse_name(), dns::kTypePtr);
    if (ptr.status != dns::Status::kOk) co_return std::nullopt;
    std::optional<std::string> any;
    int checked = 0;
    for (const auto& name : ptr.records) {
      if (++checked > limits.max_names) break;  // §4.6.4: ignore names past the tenth
      dns::Answer fwd = co_await lookup(name, address_type());
      if (fwd.status != dns::Status::kOk) continue;
      for (const auto& a : fwd.records) {
        if (!address_matches(a, 32, 128)) continue;
        if (is_subdomain_or_equal(name, domain)) co_return name;
        if (!any) any = name;
        break;
      }
    }
    co_return any;
  }

  // Looks up the one SPF record of `domain`: nullopt for "none", Abort for errors.
  Task<std::optional<std::string>> fetch_record(const std::string& domain) {
    dns::Answer txt = co_await lookup(domain, dns::kTypeTxt);
    require_ok_or_empty(txt, domain);
    std::optional<std::string> found;
    for (const auto& r : txt.records) {
      if (!is_spf_record(r)) continue;
      if (found) throw Abort{Result::kPermerror, "more than one SPF record for " + domain};
      found = r;
    }
    co_return found;
  }

  Task<Outcome> explain(const Record& rec, const std::string& domain, Outcome out) {
    out.explanation.clear();
    if (rec.exp) {
      try {
        co_await prepare_ptr(*rec.exp, domain);
        std::string name = truncate_domain(expand_domain(*rec.exp, domain));
        if (valid_dns_name(name)) {
          dns::Answer txt = co_await lookup(name, dns::kTypeTxt);
          if (txt.status == dns::Status::kOk && txt.records.size() == 1) {
            auto ms = parse_macro_string(txt.records[0], false, true, nullptr);
            if (ms) {
              co_await prepare_ptr(*ms, domain);
              out.explanation = expand_text(*ms, domain, limits.max_explanation).value_or("");
            }
          }
        }
      } catch (const Abort&) {
        // §6.2: any problem with the explanation falls back to the default.
        out.explanation.clear();
      }
    }
    if (out.explanation.empty()) {
      auto ms = parse_macro_string(default_explanation, false, true, nullptr);
      auto text = ms ? expand_text(*ms, domain, limits.max_explanation) : std::nullopt;
      out.explanation = text.value_or(default_explanation.substr(0, limits.max_explanation));
    }
    co_return out;
  }

  static Result qualifier_result(Qualifier q) {
    switch (q) {
      case Qualifier::kPass:
        return Result::kPass;
      case Qualifier::kFail:
        return Result::kFail;
      case Qualifier::kSoftfail:
        return Result::kSoftfail;
      case Qualifier::kNeutral:
        return Result::kNeutral;
    }
    return Result::kNeutral;
  }

  Task<bool> matches(const Mechanism& m, const std::string& domain) {
    using K = Mechanism::Kind;
    if (Clock::now() >= deadline) throw Abort{Result::kTemperror, "SPF time budget exhausted"};
    if (m.queries_dns()) count_dns_term();
    switch (m.kind) {
      case K::kAll:
        co_return true;
      case K::kIp4:
      case K::kIp6:
        co_return m.network->contains(req.ip);
      case K::kA: {
        auto t = co_await target(m.domain, domain);
        if (!t) co_return false;
        const std::string& name = *t;
        dns::Answer a = co_await lookup(name, address_type());
        require_ok_or_empty(a, name);
        count_void(a);
        for (const auto& r : a.records) {
          if (address_matches(r, m.cidr4, m.cidr6)) co_return true;
        }
        co_return false;
      }
      case K::kMx: {
        auto t = co_await target(m.domain, domain);
        if (!t) co_return false;
        const std::string& name = *t;
        dns::Answer mx = co_await lookup(name, dns::kTypeMx);
        require_ok_or_empty(mx, name);
        count_void(mx);
        dns::MxAnswer sorted = dns::to_mx(mx);
        if (static_cast<int>(sorted.records.size()) > limits.max_names) {
          throw Abort{Result::kPermerror,
                      "more than " + std::to_string(limits.max_names) + " MX names for " + name};
        }
        for (const auto& rr : sorted.records) {
          dns::Answer a = co_await lookup(rr.exchange, address_type());
          require_ok_or_empty(a, rr.exchange);
          for (const auto& r : a.records) {
            if (address_matches(r, m.cidr4, m.cidr6)) co_return true;
          }
        }
        co_return false;
      }
      case K::kPtr: {
        auto t = co_await target(m.domain, domain);
        if (!t) co_return false;
        const std::string& name = *t;
        dns::Answer ptr = co_await lookup(req.ip.reverse_name(), dns::kTypePtr);
        if (ptr.status != dns::Status::kOk) {
          count_void(ptr);
          co_return false;  // §5.5: a DNS error here is simply no match
        }
        int checked = 0;
        for (const auto& host : ptr.records) {
          if (++checked > limits.max_names) break;
          dns::Answer fwd = co_await lookup(host, address_type());
          if (fwd.status != dns::Status::kOk) continue;
          for (const auto& r : fwd.records) {
            if (address_matches(r, 32, 128) && is_subdomain_or_equal(host, name)) co_return true;
          }
        }
        co_return false;
      }
      case K::kExists: {
        auto t = co_await target(m.domain, domain);
        if (!t) co_return false;
        const std::string& name = *t;
        dns::Answer a = co_await lookup(name, dns::kTypeA);  // A even for IPv6 clients (§5.7)
        require_ok_or_empty(a, name);
        count_void(a);
        co_return a.status == dns::Status::kOk && !a.records.empty();
      }
      case K::kInclude: {
        auto t = co_await target(m.domain, domain);
        std::string name = t.value_or("");
        Outcome inner = co_await check(name, /*redirected=*/false);
        switch (inner.result) {
          case Result::kPass:
            co_return true;
          case Result::kFail:
          case Result::kSoftfail:
          case Result::kNeutral:
            co_return false;
          case Result::kTemperror:
            throw Abort{Result::kTemperror, inner.problem};
          case Result::kPermerror:
            throw Abort{Result::kPermerror, inner.problem};
          case Result::kNone:
            throw Abort{Result::kPermerror, "included domain " + name + " has no SPF record"};
        }
        co_return false;
      }
    }
    co_return false;
  }

  // check_host() for one domain; `redirected` when reached through redirect= (then "none"
  // becomes permerror, §6.1).
  Task<Outcome> check(std::string domain, bool redirected) {
    Outcome out;
    if (!valid_domain(domain)) {
      out.result = redirected ? Result::kPermerror : Result::kNone;
      out.problem = "invalid domain '" + domain + "'";
      co_return out;
    }
    std::optional<std::string> text = co_await fetch_record(domain);
    if (!text) {
      out.result = redirected ? Result::kPermerror : Result::kNone;
      out.problem = "no SPF record for " + domain;
      co_return out;
    }
    if (text->size() > limits.max_record_bytes) {
      throw Abort{Result::kPermerror, "SPF record of " + domain + " is " +
                                          std::to_string(text->size()) + " octets (limit " +
                                          std::to_string(limits.max_record_bytes) + ")"};
    }
    std::string problem;
    auto rec = parse_record(*text, &problem);
    if (!rec) throw Abort{Result::kPermerror, problem + " in the SPF record of " + domain};
    for (const auto& m : rec->mechanisms) {
      if (co_await matches(m, domain)) {
        out.result = qualifier_result(m.qualifier);
        out.mechanism = m.text;
        if (out.result == Result::kFail) out = co_await explain(*rec, domain, std::move(out));
        co_return out;
      }
    }
    if (rec->redirect) {
      count_dns_term();
      auto name = co_await target(rec->redirect, domain);
      co_return co_await check(name.value_or(""), /*redirected=*/true);
    }
    out.result = Result::kNeutral;
    out.mechanism = "default";
    co_return out;
  }
};

detail::Detached run(std::shared_ptr<Context> ctx, std::function<void(Outcome)> done) {
  Outcome out;
  try {
    out = co_await ctx->check(ctx->req.domain, false);
  } catch (const Abort& a) {
    out = Outcome{};
    out.result = a.result;
    out.problem = a.problem;
  } catch (const std::exception& ex) {
    out = Outcome{};
    out.result = Result::kTemperror;
    out.problem = std::string("internal error: ") + ex.what();
  }
  out.dns_terms = ctx->dns_terms;
  out.void_lookups = ctx->void_lookups;
  done(std::move(out));
}

}  // namespace

std::string_view result_name(Result r) {
  switch (r) {
    case Result::kNone:
      return "none";
    case Result::kNeutral:
      return "neutral";
    case Result::kPass:
      return "pass";
    case Result::kFail:
      return "fail";
    case Result::kSoftfail:
      return "softfail";
    case Result::kTemperror:
      return "temperror";
    case Result::kPermerror:
      return "permerror";
  }
  return "none";
}

Evaluator::Evaluator(dns::Source& resolver, Limits limits, std::string default_explanation)
    : resolver_(resolver), limits_(limits), default_explanation_(std::move(default_explanation)) {}

void Evaluator::check_host_async(Request request, std::function<void(Outcome)> done) {
  auto ctx = std::make_shared<Context>(Context{resolver_, limits_, default_explanation_,
                                               std::move(request), Clock::now() + limits_.timeout});
  run(std::move(ctx), std::move(done));
}

Outcome Evaluator::check_host(Request request) {
  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    bool ready = false;
    Outcome out;
  };
  auto shared = std::make_shared<Shared>();
  check_host_async(std::move(request), [shared](Outcome o) {
    std::lock_guard lock(shared->m);
    shared->out = std::move(o);
    shared->ready = true;
    shared->cv.notify_one();
  });
  // The evaluation ends itself at its deadline (checked before every term and lookup, each
  // lookup bounded by the resolver's timeout); this wait is the backstop if it did not.
  auto backstop = limits_.timeout + std::chrono::seconds(30);
  std::unique_lock lock(shared->m);
  if (!shared->cv.wait_for(lock, backstop, [&] { return shared->ready; })) {
    Outcome out;
    out.result = Result::kTemperror;
    out.problem = "SPF check did not finish within its deadline";
    return out;
  }
  return std::move(shared->out);
}

bool parse_check(std::string_view record, std::string* problem) {
  return parse_record(record, problem).has_value();
}

}  // namespace mxguard::common::spf
