// What mxguard-dkim does about a message once its signatures are checked (or signing failed):
// the --on-* failure action the per-signature results call for, and the SMTP reply or
// quarantine reason of an action. Pure functions of plain values, without libmilter, so every
// precedence rule is unit-tested. Must never fail a message that carries one passing
// signature, and never let a bad signature decide over a DNS error (the most temporary problem
// decides: it may go away on a retry).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "milters/dkim/options.h"
#include "milters/dkim/verifier.h"

namespace mxguard::milter::dkim {

// The configured actions for the three verification problems.
struct VerifyActions {
  FailureAction on_dns_error = FailureAction::kAccept;
  FailureAction on_key_not_found = FailureAction::kAccept;
  FailureAction on_bad_signature = FailureAction::kAccept;
};

struct VerifyDecision {
  FailureAction action = FailureAction::kAccept;
  std::string reason;   // the problem behind the action; empty when no signature failed
  std::string summary;  // "result/domain,…" ("-" for no domain) for the log line; "none"
  bool any_pass = false;
  bool dns_error = false;      // a key lookup failed temporarily (counted)
  bool key_not_found = false;  // a selector without a key record
  bool bad_signature = false;  // fail, or permerror for any reason but a missing key
};

// Any pass accepts. Otherwise the most temporary problem decides: a DNS error
// (--on-dns-error), then a missing key (--on-key-not-found), then a bad signature
// (--on-bad-signature); no signature or only neutral/other results accept.
VerifyDecision decide_verify(const std::vector<SignatureResult>& results,
                             const VerifyActions& actions);

enum class Mode { kSign, kVerify };

// What the MTA is told for a failure action.
struct FailureReply {
  enum class Status { kAccept, kTempfail, kReject };
  Status status = Status::kTempfail;
  std::string rcode, xcode, text;         // for kTempfail and kReject
  std::optional<std::string> quarantine;  // hold the message with this reason (status kAccept)
};

// accept → accept; quarantine → accept, held with "mxguard-dkim: REASON"; tempfail → 451
// (4.3.0 signing, 4.7.5 verifying); reject → 550 (5.7.0 signing, 5.7.20 verifying). Only the
// verifying texts name the reason.
FailureReply failure_reply(FailureAction action, std::string_view reason, Mode mode);

}  // namespace mxguard::milter::dkim
