// ARC chain validation (RFC 8617 §5.2) over one message: the header fields and streamed body
// of a Message, public keys through a KeyFetcher the caller supplies (mxguard-dkim: its key
// lookup on common/dns; tests: fixed records). Result pass, fail or none, the oldest-pass
// instance, and each set's sealer (AS d=/s=), newest first, as RFC 8617 §7.2.2 reports them.
// Work per message is bounded (kMax* below): more ARC sets, bytes or distinct keys than that
// is a fail, never a stall. Must never include libmilter, never throw on bad input, and never
// call a chain pass unless every AS and the newest AMS verified.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/authres/authres.h"
#include "milters/arc/arc_headers.h"
#include "milters/arc/canon.h"
#include "milters/arc/crypto.h"

namespace mxguard::milter::arc {

struct Limits {
  std::size_t max_headers = 1000;              // header fields kept for AMS h= selection
  std::size_t max_header_bytes = 1024 * 1024;  // their total size
  std::size_t max_arc_bytes = 256 * 1024;      // all ARC header fields together
  unsigned max_key_lookups = 16;               // distinct d=/s= pairs fetched per message
  // Time all key lookups of one message may take together (each is bounded by the resolver's
  // timeout, but 16 slow zones in a row would hold a milter thread for minutes). Past it no
  // lookup starts: that key counts as a temporary failure.
  std::chrono::milliseconds key_lookup_budget{10000};
  unsigned minimum_rsa_bits = 1024;
};

// A message as ARC sees it: header fields in order (top first), the body hashed as it streams.
class Message {
 public:
  explicit Message(Limits limits = {}) : limits_(limits) {}
  // `value` is what follows the colon, as received (leading space and folds kept).
  void header(std::string_view name, std::string_view value);
  // Body hashing starts only when it is needed: the message carries ARC header fields, or
  // `will_seal` (we add a set and need relaxed bh=).
  void end_of_headers(bool will_seal);
  void body(std::string_view chunk);
  void end_of_body();

  struct Field {
    std::string name;
    std::string lname;  // lower case, for h= selection
    std::string value;
  };
  const std::vector<Field>& fields() const { return fields_; }
  bool has_arc() const { return arc_fields_ > 0; }
  // Header limits exceeded: the fields kept are incomplete and no signature can be trusted.
  bool overflow() const { return overflow_; }
  std::size_t arc_fields() const { return arc_fields_; }
  // bh= of the body for a canonicalisation; nullopt when the body was not hashed.
  std::optional<std::string> body_hash(Canon c) const;
  const Limits& limits() const { return limits_; }

 private:
  Limits limits_;
  std::vector<Field> fields_;
  std::size_t bytes_ = 0;
  std::size_t arc_bytes_ = 0;
  std::size_t arc_fields_ = 0;
  bool overflow_ = false;
  std::unique_ptr<BodyHasher> simple_, relaxed_;
  std::optional<std::string> simple_hash_, relaxed_hash_;
};

using KeyFetcher = std::function<KeyAnswer(const std::string& domain, const std::string& selector)>;

struct SealerId {
  int instance = 0;
  std::string domain, selector;
};

struct ChainResult {
  Cv result = Cv::kNone;
  int instances = 0;              // N, the highest instance seen (0: no ARC header fields)
  int oldest_pass = 0;            // pass only: 0 when every AMS validated, else the oldest that did
  std::string reason;             // fail only: why
  std::vector<SealerId> sealers;  // AS d=/s= of each instance, newest first
  bool newest_cv_fail = false;    // AS(N) says cv=fail: the chain ended before us
  bool key_temp_error = false;    // a key lookup failed temporarily and the chain failed
};

ChainResult validate_chain(const Message& message, const KeyFetcher& keys);

// "(as[2].d=lists.example.org as[2].s=sel as[1].d=orig.example as[1].s=s1)"; empty when no
// sealer is known.
std::string sealers_comment(const ChainResult& r);
// The RFC 8601 result: arc=pass (sealers) header.oldest-pass=N smtp.remote-ip=IP; fail adds a
// reason; none has no comment. `client_ip` empty: no smtp.remote-ip.
common::authres::Result to_authres(const ChainResult& r, std::string_view client_ip);

}  // namespace mxguard::milter::arc
