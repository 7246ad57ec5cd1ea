// RFC 7208 SPF: check_host() on the shared resolver, asynchronous so a slow zone never holds a
// thread. Used by mxguard-policyd (HELO and MAIL FROM checks) and the DMARC milter (SPF
// self-check). Knows nothing of policy servers or milters.
// Must never exceed the RFC's limits (10 DNS-querying terms, 2 void lookups, 10 MX/PTR names)
// or the time budget, and never turn a DNS failure into anything but temperror.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/dns/resolver.h"
#include "common/net/ip.h"

namespace mxguard::common::spf {

enum class Result { kNone, kNeutral, kPass, kFail, kSoftfail, kTemperror, kPermerror };

std::string_view result_name(Result r);  // "pass", "fail", "softfail", … (RFC 7208 §2.6)

struct Limits {
  int max_dns_terms = 10;    // §4.6.4: include, a, mx, ptr, exists, redirect
  int max_void_lookups = 2;  // §4.6.4
  int max_names = 10;        // §4.6.4: MX names per mx, PTR names per ptr/%{p}
  // Whole-check budget (all lookups of one check_host, includes and redirects included).
  // A check past it ends in temperror; the last lookup may still take up to the resolver's
  // own --dns-timeout, so keep that below this.
  std::chrono::milliseconds timeout{std::chrono::seconds(20)};
  // A record longer than this is permerror. §3.4 asks records to fit a 512-octet UDP answer;
  // the largest published ones are a few hundred octets, and a huge one is only an attack on
  // our CPU.
  std::size_t max_record_bytes = 4096;
  // An expanded exp= explanation longer than this is ignored for the default one (§6.2): it
  // goes into an SMTP reply line, which RFC 5321 §4.5.3.1.5 limits to 512 octets.
  std::size_t max_explanation = 400;
};

struct Request {
  net::IpAddress ip;
  std::string domain;    // the domain to check: MAIL FROM's domain, or the HELO name
  std::string sender;    // "local@domain" for %{s}, %{l}, %{o}; "postmaster@HELO" if null
  std::string helo;      // %{h}
  std::string receiver;  // %{r}, the checking host (for explanations); default "unknown"
};

struct Outcome {
  Result result = Result::kNone;
  std::string explanation;  // only for fail: the expanded exp= text, or the default
  std::string mechanism;    // the term that matched, e.g. "-all" or "include:_spf.example"
  std::string problem;      // why for permerror/temperror (for logs and headers)
  int dns_terms = 0;        // DNS-querying terms used (limit 10)
  int void_lookups = 0;
};

class Evaluator {
 public:
  // default_explanation is used for fail when the record has no usable exp=.
  Evaluator(dns::Source& resolver, Limits limits = {},
            std::string default_explanation = "%{i} is not one of %{d}'s designated mail servers.");

  // Calls done exactly once, on the resolver's thread or (for results that need no DNS)
  // before returning. done must not block.
  void check_host_async(Request request, std::function<void(Outcome)> done);
  // Blocking wrapper (tests, CLIs, the DMARC milter's SPF self-check). Waits at most the
  // time budget plus one resolver timeout, then returns temperror. Never call from a resolver
  // callback.
  Outcome check_host(Request request);

  const Limits& limits() const { return limits_; }

 private:
  dns::Source& resolver_;
  Limits limits_;
  std::string default_explanation_;
};

// Parses only (no DNS): true when `record` is a syntactically valid SPF record. On false,
// *problem says why. Exposed for tests and the fuzz target.
bool parse_check(std::string_view record, std::string* problem = nullptr);

}  // namespace mxguard::common::spf
