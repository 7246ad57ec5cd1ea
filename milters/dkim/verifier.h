// Verifies the DKIM-Signatures of one message on libopendkim, up to a limit, and turns each
// into an RFC 8601 result (pass, fail, neutral, temperror, permerror) with header.d/i/s/a/b.
// Key records come from a KeyLookup the caller supplies (the milter: common/dns; tests and the
// fuzz target: fixed records), so the result of a lookup (timeout vs. no record) is known
// exactly. Must never include libmilter, never report pass for a key under the minimum size or
// a disallowed rsa-sha1, and never let an exception escape into libopendkim.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/authres/authres.h"
#include "milters/dkim/library.h"

namespace mxguard::milter::dkim {

struct KeyLookupResult {
  enum class Kind { kFound, kNotFound, kTempError };
  Kind kind = Kind::kNotFound;
  std::string record;  // the TXT record when found
  std::string detail;  // e.g. "timeout", "nxdomain"
};
// Called with "selector._domainkey.domain" (no trailing dot). May block; must not throw
// (an exception counts as a temporary error).
using KeyLookup = std::function<KeyLookupResult(const std::string& name)>;

struct VerifyOptions {
  unsigned max_signatures = 5;
  unsigned minimum_key_bits = 1024;
  bool allow_sha1 = false;
};

struct SignatureResult {
  std::string result;  // pass, fail, neutral, temperror, permerror
  std::string reason;  // empty for pass
  std::string domain, identity, selector, algorithm, b;  // header.d/i/s/a/b (b: 8 chars)
  unsigned key_bits = 0;
  bool key_not_found = false;  // permerror because the record does not exist
  bool dns_error = false;      // temperror from the key lookup

  common::authres::Result to_authres() const;
};

class Verifier {
 public:
  Verifier(const Library& lib, KeyLookup lookup, VerifyOptions options, const std::string& id);
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  void header(std::string_view field);
  void end_of_headers();
  void body(std::string_view chunk);
  // One result per verified signature in header order; empty: no signature (dkim=none).
  std::vector<SignatureResult> finish();
  // Signatures present beyond --max-signatures-to-verify (not verified, not reported).
  unsigned ignored() const { return ignored_; }

  // For the libopendkim callbacks (library.cc): not for other callers.
  int on_key_lookup(const std::string& name, unsigned char* buf, std::size_t buflen);
  void on_prescreen(void* sigs, int nsigs);

 private:
  std::string message_error(int stat) const;

  KeyLookup lookup_;
  VerifyOptions options_;
  HandlePtr handle_;
  bool done_ = false;         // libopendkim said NOSIG or failed: no more input needed
  std::string syntax_error_;  // the message cannot be verified at all (e.g. no From)
  std::map<std::string, KeyLookupResult> lookups_;
  unsigned ignored_ = 0;
  int header_count_ = 0;
};

// The A-R header value for these results ("authserv-id; dkim=… …" or "authserv-id; dkim=none").
// `arc`, when given, follows the DKIM results (arc=… from milters/arc).
std::string authentication_results(const std::string& authserv_id,
                                   const std::vector<SignatureResult>& results,
                                   const common::authres::Result* arc = nullptr);

}  // namespace mxguard::milter::dkim
