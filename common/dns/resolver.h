// The suite's one DNS resolver: libunbound behind a background thread, asynchronous for the SPF
// evaluator and blocking for everyone else, safe to call from many threads (libmilter runs one
// per SMTP connection). Outcomes a mail check must tell apart (NXDOMAIN, no data, SERVFAIL,
// timeout) are values; only misuse and set-up failures throw.
// Must never wait without a deadline, and never run a callback after the destructor returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/options.h"
#include "common/dns/wire.h"

namespace mxguard::common::dns {

enum class Status {
  kOk,        // NOERROR with at least one record of the asked type
  kNxDomain,  // the name does not exist
  kNoData,    // the name exists, but has no record of that type
  kServFail,  // SERVFAIL, or no server could be reached within unbound's own retries
  kTimeout,   // our deadline (ResolverOptions::timeout) passed first; the query was cancelled
  kError,     // anything else: REFUSED, a bad name, resolver shutting down, …
};
std::string_view status_name(Status status);  // "ok", "nxdomain", "nodata", …

struct Answer {
  Status status = Status::kError;
  // Text form per type (see rdata_to_text): "192.0.2.1", "2001:db8::1", "10 mx.example.com",
  // TXT strings concatenated, PTR/CNAME/NS names without the trailing dot. Malformed rdata is
  // skipped (and counted), so kOk may come with fewer records than the server sent.
  std::vector<std::string> records;
  int ttl = 0;
};

struct MxAnswer {
  Status status = Status::kError;
  std::vector<MxRecord> records;  // sorted by preference, stable for equal preferences
  int ttl = 0;
};

// Converts an MX Answer's text records ("PREF NAME") into sorted MxRecords.
MxAnswer to_mx(const Answer& answer);

// The asynchronous half of a resolver, all the SPF evaluator needs: the Resolver below, or a
// stub that answers from a table (the SPF fuzz target).
class Source {
 public:
  using Callback = std::function<void(Answer)>;
  virtual ~Source() = default;
  // Starts a query; callback runs exactly once with the outcome.
  virtual void resolve_async(std::string name, std::uint16_t rrtype, Callback callback) = 0;
  // An answer available without waiting, or nullopt.
  virtual std::optional<Answer> cached(std::string_view name, std::uint16_t rrtype) = 0;
};

class Resolver : public Source {
 public:
  // Runs on the resolver's thread: keep it short and never destroy the Resolver from it.
  // It may call resolve_async again (e.g. SPF following an include).
  using Callback = Source::Callback;

  // Throws std::invalid_argument for bad options, std::runtime_error if unbound cannot be set up.
  explicit Resolver(ResolverOptions options = {});
  // Cancels queries in flight; their callbacks run (Status::kError) before this returns.
  ~Resolver() override;
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Starts a query; callback runs exactly once, on the resolver's thread, with the outcome or
  // kTimeout at the deadline. While the destructor runs, it runs at once with kError.
  void resolve_async(std::string name, std::uint16_t rrtype, Callback callback) override;

  // An answer still fresh in our own cache (in front of unbound's), or nullopt. Lets callers
  // (the SPF evaluator) skip the trip to the resolver thread for warm names. Empty when the
  // cache is off.
  std::optional<Answer> cached(std::string_view name, std::uint16_t rrtype) override;

  // Blocking lookups; each waits at most ResolverOptions::timeout. Calling them from a
  // callback would deadlock the resolver's thread and throws std::logic_error instead.
  Answer lookup(std::string_view name, std::uint16_t rrtype);
  Answer lookup_a(std::string_view name) { return lookup(name, kTypeA); }
  Answer lookup_aaaa(std::string_view name) { return lookup(name, kTypeAaaa); }
  Answer lookup_txt(std::string_view name) { return lookup(name, kTypeTxt); }
  MxAnswer lookup_mx(std::string_view name) { return to_mx(lookup(name, kTypeMx)); }
  // Reverse lookup of an IPv4/IPv6 address; std::invalid_argument if ip is not one.
  Answer lookup_ptr(std::string_view ip) { return lookup(ptr_name(ip), kTypePtr); }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mxguard::common::dns
