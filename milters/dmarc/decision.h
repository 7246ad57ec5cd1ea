// What mxguard-dmarc does with a message, decided from plain facts the glue gathered: skip it,
// reject it for forged Authentication-Results or a bad From, or carry out the evaluated DMARC
// policy as --enforce, --never-reject-domains, --quarantine-action and --on-temperror say; with
// the results for our A-R header, what is counted, the aggregate report row and the decision
// log line. Pure functions without libmilter or DNS, so every rule is unit-tested; the glue
// (dmarc_milter.cc) gathers the inputs, evaluates, and applies a Decision.
// Must never reject or hold mail in monitor mode or from a verified never-reject identity,
// never turn a DNS failure into more than a tempfail, and never apply a stricter disposition
// than the evaluation asks for.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/authres/authres.h"
#include "milters/dmarc/aggregate.h"
#include "milters/dmarc/evaluate.h"
#include "milters/dmarc/options.h"

namespace mxguard::milter::dmarc {

// The message as the glue saw it up to the end of the message.
struct Message {
  std::string skip;                // authenticated|local|trusted-network: not evaluated
  std::string client;              // the client address; empty: a local submission
  std::string client_host;         // the client host name Postfix verified (forward = reverse)
  std::string envelope_from;       // MAIL FROM without angle brackets; empty: the null sender
  std::string envelope_domain;     // its domain, normalized; empty when it has none
  std::size_t forged_authres = 0;  // A-R headers claiming our authserv-id without our seal
};

// The author domains of the From header(s).
struct Authors {
  std::vector<std::string> domains;  // distinct, in header order
  std::string problem;               // no, unparsable or too many From headers: permerror
};
// `values`: the From header values kept (the first few), `count`: how many From headers the
// message had; more than were kept is a problem.
Authors read_authors(const std::vector<std::string>& values, std::size_t count,
                     unsigned max_addresses);

// The ARC result mxguard-dkim reported for the message (RFC 8617), read from its A-R entry:
//   arc=pass (as[2].d=lists.example as[2].s=sel as[1].d=orig.example as[1].s=s1)
//     header.oldest-pass=0 smtp.remote-ip=198.51.100.7
// The comment names each seal's signer, newest first (RFC 8617 §7.2.2's report form).
struct ArcSealer {
  int instance = 0;
  std::string domain;  // normalized
  std::string selector;
  friend bool operator==(const ArcSealer&, const ArcSealer&) = default;
};
struct ArcVerdict {
  std::string result = "none";     // pass|fail|none (anything else reads as fail)
  std::vector<ArcSealer> sealers;  // newest (highest instance) first
  std::string remote_ip;           // smtp.remote-ip: the client that handed it to us
  // "arc=pass as[2].d=… as[2].s=… …", the aggregate report's reason comment.
  std::string summary() const;
};
// The verdict of one A-R entry with method "arc" (the comment with or without parentheses).
// Sealer items that do not parse are left out; instances are bounded by RFC 8617's 50. When
// the newest instance named has no d=, no sealer is returned (an older one never stands in).
ArcVerdict read_arc(const common::authres::Result& r);

// What the glue found out by checking SPF and evaluating DMARC.
struct Evaluated {
  Evaluation evaluation;            // the strictest over the author domains (strictest())
  std::vector<AuthResult> dkim;     // the DKIM results we trust (our sealed A-R header)
  AuthResult spf;                   // the SPF identity's domain and result ("none": unchecked)
  std::string spf_scope = "mfrom";  // mfrom, or helo (null sender, or no envelope domain)
  ArcVerdict arc;                   // from the same trusted source as the DKIM results
};

// The strictest of several evaluations (one per From domain): fail (the stricter disposition
// first), then temperror, permerror, none, pass; the first of equals. Empty: Evaluation{}.
Evaluation strictest(const std::vector<Evaluation>& evaluations);

// True when `name` is one of `domains` or a subdomain of one (case-insensitive).
bool in_or_under(const std::string& name, const std::vector<std::string>& domains);

// --reject-text with every %d replaced by the From domain.
std::string expand_reject_text(std::string_view text, std::string_view from_domain);

struct Decision {
  enum class Action { kAccept, kReject, kTempfail, kHold, kHeader };
  Action action = Action::kAccept;
  std::string rcode, xcode, text;  // kReject, kTempfail
  std::string hold_reason;         // kHold: the quarantine reason
  // Our results for the A-R header (the trusted one extended, or a new one); empty: none.
  std::vector<common::authres::Result> authres;

  // What is counted: mxguard_dmarc_skipped_total{reason}, …_forged_authres_rejected_total,
  // …_results_total{result}, …_actions_total{action}. Empty/false: not counted.
  std::string skipped;
  bool forged_rejected = false;
  std::string counted_result;
  std::string counted_action;

  Policy applied = Policy::kNone;  // the disposition carried out
  std::string override_type;       // why it is not the policy's: sampled_out, local_policy, …
  std::string override_comment;    // the report's reason comment (the trusted ARC chain)
  struct Aggregate {
    Published policy;
    Row row;
  };
  std::optional<Aggregate> aggregate;  // the aggregate report row to count, if any

  // The decision log line after the queue id, in order.
  std::vector<std::pair<std::string, std::string>> log;
};

// Before anything about the message is read: a skipped client's message is accepted as it is
// (forged A-R headers included: it is not ours to judge); one with more forged A-R headers
// than `max_deletions` is rejected. nullopt: go on (the glue deletes the forged headers).
std::optional<Decision> screen(const Message& m, std::size_t max_deletions);

// The From header(s): permerror for a bad From (--on-bad-from) or for several From domains
// with --multi-from reject; rejected only with --enforce. nullopt: evaluate authors.domains.
std::optional<Decision> judge_authors(const Message& m, const Authors& authors, const Options& o);

// After evaluation. temperror: --on-temperror. fail with a disposition: none in monitor mode
// (--enforce no), none for a verified --never-reject-domains identity (SPF pass of the
// envelope domain, DKIM pass, or the verified client host name), none when the ARC chain
// passed and its newest seal is by a --trusted-arc-sealers domain (override local_policy with
// the chain as comment, RFC 8617 §7.2.2), else reject with --reject-text or
// --quarantine-action. Everything else is accepted.
Decision decide(const Message& m, const Evaluated& ev, const Options& o);

}  // namespace mxguard::milter::dmarc
