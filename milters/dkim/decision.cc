// Signature results → failure action, failure action → reply (see decision.h).
#include "milters/dkim/decision.h"

namespace mxguard::milter::dkim {

VerifyDecision decide_verify(const std::vector<SignatureResult>& results,
                             const VerifyActions& actions) {
  VerifyDecision d;
  for (const auto& r : results) {
    if (!d.summary.empty()) d.summary += ",";
    d.summary += r.result + "/" + (r.domain.empty() ? "-" : r.domain);
    d.any_pass |= r.result == "pass";
    d.dns_error |= r.dns_error;
    d.key_not_found |= r.key_not_found;
    d.bad_signature |= r.result == "fail" || (r.result == "permerror" && !r.key_not_found);
  }
  if (results.empty()) d.summary = "none";
  if (d.any_pass) return d;
  if (d.dns_error) {
    d.action = actions.on_dns_error;
    d.reason = "key lookup failed";
  } else if (d.key_not_found) {
    d.action = actions.on_key_not_found;
    d.reason = "key not found";
  } else if (d.bad_signature) {
    d.action = actions.on_bad_signature;
    d.reason = "signature did not verify";
  }
  return d;
}

FailureReply failure_reply(FailureAction action, std::string_view reason, Mode mode) {
  FailureReply r;
  bool signing = mode == Mode::kSign;
  switch (action) {
    case FailureAction::kAccept:
      r.status = FailureReply::Status::kAccept;
      return r;
    case FailureAction::kQuarantine:
      r.status = FailureReply::Status::kAccept;
      r.quarantine = "mxguard-dkim: " + std::string(reason);
      return r;
    case FailureAction::kTempfail:
      r.status = FailureReply::Status::kTempfail;
      r.rcode = "451";
      r.xcode = signing ? "4.3.0" : "4.7.5";
      r.text = signing ? "DKIM signing failed, try again later"
                       : "DKIM verification failed temporarily: " + std::string(reason);
      return r;
    case FailureAction::kReject:
      r.status = FailureReply::Status::kReject;
      r.rcode = "550";
      r.xcode = signing ? "5.7.0" : "5.7.20";
      r.text = signing ? "DKIM signing failed" : "No valid DKIM signature: " + std::string(reason);
      return r;
  }
  r.status = FailureReply::Status::kTempfail;  // an action out of range: never accept
  return r;
}

}  // namespace mxguard::milter::dkim
