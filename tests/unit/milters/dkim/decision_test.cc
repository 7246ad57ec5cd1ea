// Tests milters/dkim/decision.cc: the precedence of the verification problems over every
// combination of signature results and --on-* actions, the log summary, and the reply of
// every failure action when signing and when verifying.
#include "milters/dkim/decision.h"

#include <gtest/gtest.h>

namespace mxguard::milter::dkim {
namespace {

using F = FailureAction;
using S = FailureReply::Status;

SignatureResult pass(std::string domain = "example.org") {
  SignatureResult r;
  r.result = "pass";
  r.domain = std::move(domain);
  return r;
}
SignatureResult dns_error(std::string domain = "slow.example") {
  SignatureResult r;
  r.result = "temperror";
  r.domain = std::move(domain);
  r.dns_error = true;
  return r;
}
SignatureResult not_found(std::string domain = "nokey.example") {
  SignatureResult r;
  r.result = "permerror";
  r.domain = std::move(domain);
  r.key_not_found = true;
  return r;
}
SignatureResult failed(std::string domain = "bad.example") {
  SignatureResult r;
  r.result = "fail";
  r.domain = std::move(domain);
  return r;
}
SignatureResult broken(std::string domain = "broken.example") {
  SignatureResult r;
  r.result = "permerror";  // a syntax error, an RSA key too short, rsa-sha1, …
  r.domain = std::move(domain);
  return r;
}
SignatureResult neutral() {
  SignatureResult r;
  r.result = "neutral";
  r.domain = "neutral.example";
  return r;
}

// Every problem configured to a different action, so the action shows which one decided.
const VerifyActions kDistinct{.on_dns_error = F::kTempfail,
                              .on_key_not_found = F::kQuarantine,
                              .on_bad_signature = F::kReject};

TEST(DkimDecision, NoSignatureAccepts) {
  VerifyDecision d = decide_verify({}, kDistinct);
  EXPECT_EQ(d.action, F::kAccept);
  EXPECT_EQ(d.reason, "");
  EXPECT_EQ(d.summary, "none");
  EXPECT_FALSE(d.any_pass || d.dns_error || d.key_not_found || d.bad_signature);
}

TEST(DkimDecision, PrecedenceTable) {
  struct Case {
    std::vector<SignatureResult> results;
    F action;
    std::string reason;
  };
  const std::vector<Case> cases = {
      // One passing signature wins over every problem, in any position.
      {{pass()}, F::kAccept, ""},
      {{failed(), pass()}, F::kAccept, ""},
      {{dns_error(), not_found(), failed(), broken(), pass()}, F::kAccept, ""},
      {{pass(), dns_error()}, F::kAccept, ""},
      // One problem alone.
      {{dns_error()}, F::kTempfail, "key lookup failed"},
      {{not_found()}, F::kQuarantine, "key not found"},
      {{failed()}, F::kReject, "signature did not verify"},
      {{broken()}, F::kReject, "signature did not verify"},
      // The most temporary problem decides, whatever the order.
      {{failed(), dns_error()}, F::kTempfail, "key lookup failed"},
      {{not_found(), dns_error()}, F::kTempfail, "key lookup failed"},
      {{dns_error(), failed(), not_found()}, F::kTempfail, "key lookup failed"},
      {{failed(), not_found()}, F::kQuarantine, "key not found"},
      {{broken(), not_found()}, F::kQuarantine, "key not found"},
      {{failed(), broken()}, F::kReject, "signature did not verify"},
      // Results that are no problem: neutral, and a temperror that is not a DNS error.
      {{neutral()}, F::kAccept, ""},
      {{[] {
         SignatureResult r;
         r.result = "temperror";
         return r;
       }()},
       F::kAccept,
       ""},
      {{neutral(), failed()}, F::kReject, "signature did not verify"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    VerifyDecision d = decide_verify(cases[i].results, kDistinct);
    EXPECT_EQ(d.action, cases[i].action) << "case " << i;
    EXPECT_EQ(d.reason, cases[i].reason) << "case " << i;
  }
}

TEST(DkimDecision, EachProblemUsesItsOwnOption) {
  for (F a : {F::kAccept, F::kTempfail, F::kReject, F::kQuarantine}) {
    EXPECT_EQ(decide_verify({dns_error()}, {.on_dns_error = a}).action, a);
    EXPECT_EQ(decide_verify({not_found()}, {.on_key_not_found = a}).action, a);
    EXPECT_EQ(decide_verify({failed()}, {.on_bad_signature = a}).action, a);
    EXPECT_EQ(decide_verify({broken()}, {.on_bad_signature = a}).action, a);
    // The others' settings do not leak in.
    VerifyActions others{
        .on_dns_error = F::kReject, .on_key_not_found = F::kReject, .on_bad_signature = F::kReject};
    others.on_key_not_found = a;
    EXPECT_EQ(decide_verify({not_found()}, others).action, a);
  }
}

TEST(DkimDecision, AcceptedProblemKeepsItsReason) {
  // --on-dns-error accept: accepted, but the reason is still known (not logged, not replied).
  VerifyDecision d = decide_verify({dns_error()}, VerifyActions{});
  EXPECT_EQ(d.action, F::kAccept);
  EXPECT_EQ(d.reason, "key lookup failed");
}

TEST(DkimDecision, FlagsAndSummary) {
  VerifyDecision d = decide_verify({pass("a.example"), dns_error("b.example"), not_found(""),
                                    failed("d.example"), broken("e.example")},
                                   kDistinct);
  EXPECT_EQ(d.summary,
            "pass/a.example,temperror/b.example,permerror/-,fail/d.example,permerror/e.example");
  EXPECT_TRUE(d.any_pass);
  EXPECT_TRUE(d.dns_error);
  EXPECT_TRUE(d.key_not_found);
  EXPECT_TRUE(d.bad_signature);

  d = decide_verify({not_found()}, kDistinct);
  EXPECT_TRUE(d.key_not_found);
  EXPECT_FALSE(d.bad_signature);  // a missing key is not a bad signature
  EXPECT_FALSE(d.dns_error);
  EXPECT_FALSE(d.any_pass);
  EXPECT_EQ(d.summary, "permerror/nokey.example");
}

TEST(DkimFailureReply, Verifying) {
  FailureReply r = failure_reply(F::kAccept, "key not found", Mode::kVerify);
  EXPECT_EQ(r.status, S::kAccept);
  EXPECT_EQ(r.rcode, "");
  EXPECT_FALSE(r.quarantine);

  r = failure_reply(F::kQuarantine, "key not found", Mode::kVerify);
  EXPECT_EQ(r.status, S::kAccept);
  EXPECT_EQ(r.rcode, "");
  ASSERT_TRUE(r.quarantine);
  EXPECT_EQ(*r.quarantine, "mxguard-dkim: key not found");

  r = failure_reply(F::kTempfail, "key lookup failed", Mode::kVerify);
  EXPECT_EQ(r.status, S::kTempfail);
  EXPECT_EQ(r.rcode, "451");
  EXPECT_EQ(r.xcode, "4.7.5");
  EXPECT_EQ(r.text, "DKIM verification failed temporarily: key lookup failed");
  EXPECT_FALSE(r.quarantine);

  r = failure_reply(F::kReject, "signature did not verify", Mode::kVerify);
  EXPECT_EQ(r.status, S::kReject);
  EXPECT_EQ(r.rcode, "550");
  EXPECT_EQ(r.xcode, "5.7.20");
  EXPECT_EQ(r.text, "No valid DKIM signature: signature did not verify");
  EXPECT_FALSE(r.quarantine);
}

TEST(DkimFailureReply, SigningNamesNoReasonInTheReply) {
  const std::string reason = "key /etc/dkim/k.pem: bad PEM";
  FailureReply r = failure_reply(F::kAccept, reason, Mode::kSign);
  EXPECT_EQ(r.status, S::kAccept);
  EXPECT_EQ(r.rcode, "");

  r = failure_reply(F::kQuarantine, reason, Mode::kSign);
  EXPECT_EQ(r.status, S::kAccept);
  ASSERT_TRUE(r.quarantine);
  EXPECT_EQ(*r.quarantine, "mxguard-dkim: " + reason);

  r = failure_reply(F::kTempfail, reason, Mode::kSign);
  EXPECT_EQ(r.status, S::kTempfail);
  EXPECT_EQ(r.rcode, "451");
  EXPECT_EQ(r.xcode, "4.3.0");
  EXPECT_EQ(r.text, "DKIM signing failed, try again later");

  r = failure_reply(F::kReject, reason, Mode::kSign);
  EXPECT_EQ(r.status, S::kReject);
  EXPECT_EQ(r.rcode, "550");
  EXPECT_EQ(r.xcode, "5.7.0");
  EXPECT_EQ(r.text, "DKIM signing failed");
}

TEST(DkimFailureReply, ActionOutOfRangeIsNeverAccept) {
  FailureReply r = failure_reply(static_cast<F>(99), "x", Mode::kVerify);
  EXPECT_EQ(r.status, S::kTempfail);
  EXPECT_EQ(r.rcode, "");  // the wrapper's default reply
}

TEST(DkimDecision, VerifyFlowsIntoReply) {
  // The glue's two steps together: a DNS error under --on-dns-error tempfail.
  VerifyDecision d = decide_verify({failed(), dns_error()}, kDistinct);
  FailureReply r = failure_reply(d.action, d.reason, Mode::kVerify);
  EXPECT_EQ(r.status, S::kTempfail);
  EXPECT_EQ(r.text, "DKIM verification failed temporarily: key lookup failed");
}

}  // namespace
}  // namespace mxguard::milter::dkim
