// Tests milters/dmarc/decision.cc: skipped and forged messages, From problems under
// --on-bad-from/--multi-from/--enforce, the action for every evaluation result under
// --enforce, --never-reject-domains, --quarantine-action and --on-temperror, our A-R results,
// the aggregate row, and the decision log line as it is written.
#include "milters/dmarc/decision.h"

#include <gtest/gtest.h>

#include <tuple>

namespace mxguard::milter::dmarc {
namespace {

using A = Decision::Action;
using Fields = std::vector<std::pair<std::string, std::string>>;

std::string field(const Decision& d, const std::string& key) {
  for (const auto& [k, v] : d.log) {
    if (k == key) return v;
  }
  return "(absent)";
}

Message message() {
  Message m;
  m.client = "192.0.2.7";
  m.client_host = "mail.sender.example";
  m.envelope_from = "bounce@sender.example";
  m.envelope_domain = "sender.example";
  return m;
}

Record record(Policy p, bool rua = true) {
  Record r;
  r.p = p;
  if (rua) r.rua = parse_uri_list("mailto:agg@example.com");
  return r;
}

// An evaluation of example.com with a record: `result` with the disposition asked for.
Evaluation evaluation(const std::string& result, Policy policy, Policy disposition) {
  Evaluation e;
  e.result = result;
  e.from_domain = "example.com";
  e.policy_domain = "example.com";
  e.org_domain = "example.com";
  e.record = record(policy);
  e.policy = policy;
  e.disposition = disposition;
  return e;
}
Evaluation fail(Policy disposition) { return evaluation("fail", disposition, disposition); }

Evaluated evaluated(Evaluation e) {
  Evaluated ev;
  ev.evaluation = std::move(e);
  ev.spf = {"sender.example", "softfail", ""};
  return ev;
}

Options options() {
  Options o;
  o.never_reject_domains = {"lists.example"};
  return o;
}

TEST(DmarcScreen, SkippedClientsAreAcceptedAsTheyAre) {
  Message m = message();
  m.skip = "trusted-network";
  m.forged_authres = 100;  // not ours to judge: nothing is deleted, nothing rejected
  auto d = screen(m, 32);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->action, A::kAccept);
  EXPECT_EQ(d->skipped, "trusted-network");
  EXPECT_TRUE(d->authres.empty());
  EXPECT_EQ(d->counted_result, "");
  EXPECT_EQ(d->counted_action, "");
  EXPECT_FALSE(d->aggregate);
  EXPECT_EQ(d->log,
            (Fields{{"dmarc", "skipped"}, {"reason", "trusted-network"}, {"client", "192.0.2.7"}}));
  m.skip = "local";
  m.client = "";
  EXPECT_EQ(field(*screen(m, 32), "client"), "local");
}

TEST(DmarcScreen, MoreForgedHeadersThanWeDeleteAreRejected) {
  Message m = message();
  m.forged_authres = 32;
  EXPECT_FALSE(screen(m, 32));  // deleted, then evaluated
  m.forged_authres = 33;
  auto d = screen(m, 32);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->action, A::kReject);
  EXPECT_EQ(d->rcode, "550");
  EXPECT_EQ(d->xcode, "5.7.1");
  EXPECT_EQ(d->text, "Message carries forged Authentication-Results headers");
  EXPECT_TRUE(d->forged_rejected);
  EXPECT_TRUE(d->authres.empty());
  EXPECT_EQ(d->counted_result, "");  // not counted as a DMARC result
  EXPECT_EQ(d->log, (Fields{{"dmarc", "reject"},
                            {"reason", "forged-authentication-results"},
                            {"forged_ar", "33"}}));
}

TEST(DmarcAuthors, ReadFromHeaders) {
  Authors a = read_authors({"Alice <a@Example.COM>, b@example.com, c@other.example"}, 1, 50);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.domains, (std::vector<std::string>{"example.com", "other.example"}));
  a = read_authors({"a@one.example", "b@two.example"}, 2, 50);
  EXPECT_EQ(a.domains, (std::vector<std::string>{"one.example", "two.example"}));
  EXPECT_EQ(read_authors({}, 0, 50).problem, "no From header");
  // More From headers than were kept (the glue keeps four).
  EXPECT_EQ(read_authors({"a@x.example", "b@x.example"}, 3, 50).problem, "too many From headers");
  EXPECT_EQ(read_authors({"a@x.example", "b@x.example"}, 2, 50).problem, "");
  EXPECT_TRUE(read_authors({""}, 1, 50).problem.starts_with("From: ")) << "empty From";
  EXPECT_TRUE(read_authors({"Undisclosed:;"}, 1, 50).problem.starts_with("From: "));
  EXPECT_TRUE(read_authors({"a@x.example, b@x.example"}, 1, 1).problem.starts_with("From: "));
  EXPECT_EQ(read_authors({"a@x.example, b@x.example"}, 1, 2).problem, "");
  // The first problem is reported, later headers are not read.
  a = read_authors({"bad@", "a@x.example"}, 2, 50);
  EXPECT_TRUE(a.problem.starts_with("From: "));
}

TEST(DmarcAuthors, BadFromTable) {
  struct Case {
    BadFromAction on_bad_from;
    bool enforce;
    A action;
  };
  for (const Case& c : {Case{BadFromAction::kReject, true, A::kReject},
                        Case{BadFromAction::kReject, false, A::kAccept},
                        Case{BadFromAction::kAccept, true, A::kAccept},
                        Case{BadFromAction::kAccept, false, A::kAccept}}) {
    Options o = options();
    o.parsed.on_bad_from = c.on_bad_from;
    o.enforce = c.enforce;
    Message m = message();
    m.forged_authres = 2;
    auto d = judge_authors(m, {{}, "no From header"}, o);
    ASSERT_TRUE(d);
    std::string action = c.action == A::kReject ? "reject" : "accept";
    EXPECT_EQ(d->action, c.action) << action;
    EXPECT_EQ(d->counted_result, "permerror");
    EXPECT_EQ(d->counted_action, action);
    EXPECT_EQ(d->rcode, c.action == A::kReject ? "550" : "");
    if (c.action == A::kReject) {
      EXPECT_EQ(d->xcode, "5.7.1");
      EXPECT_EQ(d->text, "Message must have one From header with valid addresses (RFC 5322)");
    }
    // The A-R header says why, whether or not the message is rejected.
    ASSERT_EQ(d->authres.size(), 1u);
    EXPECT_EQ(d->authres[0],
              (common::authres::Result{"dmarc", "", "permerror", "no From header", "", {}}));
    EXPECT_FALSE(d->aggregate);
    EXPECT_EQ(d->log, (Fields{{"dmarc", "permerror"},
                              {"action", action},
                              {"reason", "no From header"},
                              {"client", "192.0.2.7"},
                              {"forged_ar_removed", "2"}}));
  }
}

TEST(DmarcAuthors, SeveralFromDomainsTable) {
  Authors two{{"a.example", "b.example"}, ""};
  struct Case {
    MultiFromAction multi_from;
    bool enforce;
    bool decided;
    A action;
  };
  for (const Case& c : {Case{MultiFromAction::kReject, true, true, A::kReject},
                        Case{MultiFromAction::kReject, false, true, A::kAccept},
                        Case{MultiFromAction::kEvaluate, true, false, A::kAccept},
                        Case{MultiFromAction::kEvaluate, false, false, A::kAccept}}) {
    Options o = options();
    o.parsed.multi_from = c.multi_from;
    o.enforce = c.enforce;
    auto d = judge_authors(message(), two, o);
    ASSERT_EQ(d.has_value(), c.decided);
    if (!d) continue;  // evaluated: decide() picks the strictest result
    std::string action = c.enforce ? "reject" : "accept";
    EXPECT_EQ(d->action, c.action);
    EXPECT_EQ(d->counted_result, "permerror");
    EXPECT_EQ(d->counted_action, action);
    if (c.action == A::kReject) {
      EXPECT_EQ(d->rcode, "550");
      EXPECT_EQ(d->xcode, "5.7.1");
      EXPECT_EQ(d->text, "Messages with several From domains are not accepted");
    }
    ASSERT_EQ(d->authres.size(), 1u);
    EXPECT_EQ(d->authres[0],
              (common::authres::Result{"dmarc", "", "permerror", "several From domains", "", {}}));
    EXPECT_EQ(d->log, (Fields{{"dmarc", "permerror"},
                              {"action", action},
                              {"reason", "several From domains"},
                              {"from", "a.example,b.example"},
                              {"client", "192.0.2.7"}}));
  }
  // One domain (even in several addresses) is no problem under either setting.
  Options o = options();
  EXPECT_FALSE(judge_authors(message(), {{"a.example"}, ""}, o));
  // A bad From decides before the domain count.
  auto d = judge_authors(message(), {{"a.example", "b.example"}, "From: oops"}, o);
  ASSERT_TRUE(d);
  EXPECT_EQ(field(*d, "reason"), "From: oops");
}

// The action table after evaluation: every result and disposition under the options that
// change it.
TEST(DmarcDecide, ActionTable) {
  struct Case {
    const char* name;
    Evaluation e;
    bool enforce;
    QuarantineAction quarantine;
    TemperrorAction on_temperror;
    bool forwarder;  // the client host name is under --never-reject-domains
    A action;
    std::string log_action, counted, dis, override_type;
  };
  const auto Q = QuarantineAction::kHold;
  const auto T = TemperrorAction::kAccept;
  Evaluation sampled = evaluation("fail", Policy::kReject, Policy::kQuarantine);
  sampled.sampled_out = true;
  Evaluation temperror;
  temperror.result = "temperror";
  temperror.from_domain = "example.com";
  temperror.policy_domain = "example.com";
  temperror.problem = "DNS lookup of _dmarc.example.com failed";
  Evaluation permerror = temperror;
  permerror.result = "permerror";
  permerror.problem = "several DMARC records at _dmarc.example.com";
  Evaluation none;
  none.from_domain = "example.com";
  none.problem = "no DMARC record";
  Evaluation pass = evaluation("pass", Policy::kReject, Policy::kNone);
  pass.dkim_aligned = true;

  const std::vector<Case> cases = {
      {"reject", fail(Policy::kReject), true, Q, T, false, A::kReject, "reject", "reject", "reject",
       ""},
      {"quarantine hold", fail(Policy::kQuarantine), true, Q, T, false, A::kHold, "hold", "hold",
       "quarantine", ""},
      {"quarantine header", fail(Policy::kQuarantine), true, QuarantineAction::kHeader, T, false,
       A::kHeader, "header", "header", "quarantine", ""},
      {"quarantine accept", fail(Policy::kQuarantine), true, QuarantineAction::kAccept, T, false,
       A::kAccept, "accept", "accept", "none", "local_policy"},
      // --quarantine-action does not weaken a reject.
      {"reject, header", fail(Policy::kReject), true, QuarantineAction::kHeader, T, false,
       A::kReject, "reject", "reject", "reject", ""},
      {"reject, q-accept", fail(Policy::kReject), true, QuarantineAction::kAccept, T, false,
       A::kReject, "reject", "reject", "reject", ""},
      {"p=none fail", fail(Policy::kNone), true, Q, T, false, A::kAccept, "accept", "accept",
       "none", ""},
      {"sampled out", sampled, true, Q, T, false, A::kHold, "hold", "hold", "quarantine",
       "sampled_out"},
      // Monitor mode: never reject or hold, whatever else says so.
      {"monitor reject", fail(Policy::kReject), false, Q, T, false, A::kAccept, "none (monitor)",
       "none", "none", "local_policy"},
      {"monitor quarantine", fail(Policy::kQuarantine), false, QuarantineAction::kHeader, T, false,
       A::kAccept, "none (monitor)", "none", "none", "local_policy"},
      {"monitor over forwarder", fail(Policy::kReject), false, Q, T, true, A::kAccept,
       "none (monitor)", "none", "none", "local_policy"},
      {"monitor, p=none", fail(Policy::kNone), false, Q, T, false, A::kAccept, "accept", "accept",
       "none", ""},
      // A verified forwarder.
      {"forwarder reject", fail(Policy::kReject), true, Q, T, true, A::kAccept,
       "none (never-reject-domains)", "none", "none", "trusted_forwarder"},
      {"forwarder quarantine", fail(Policy::kQuarantine), true, Q, T, true, A::kAccept,
       "none (never-reject-domains)", "none", "none", "trusted_forwarder"},
      // temperror: --on-temperror, and nothing else, decides.
      {"temperror accept", temperror, true, Q, T, false, A::kAccept, "accept", "accept", "none",
       ""},
      {"temperror tempfail", temperror, true, Q, TemperrorAction::kTempfail, false, A::kTempfail,
       "tempfail", "tempfail", "none", ""},
      {"temperror tempfail, monitor", temperror, false, Q, TemperrorAction::kTempfail, false,
       A::kTempfail, "tempfail", "tempfail", "none", ""},
      // Results without a disposition are accepted under every setting.
      {"permerror", permerror, true, Q, TemperrorAction::kTempfail, false, A::kAccept, "accept",
       "accept", "none", ""},
      {"none", none, true, Q, TemperrorAction::kTempfail, false, A::kAccept, "accept", "accept",
       "none", ""},
      {"pass", pass, true, Q, TemperrorAction::kTempfail, false, A::kAccept, "accept", "accept",
       "none", ""},
  };
  for (const Case& c : cases) {
    Options o = options();
    o.enforce = c.enforce;
    o.parsed.quarantine_action = c.quarantine;
    o.parsed.on_temperror = c.on_temperror;
    Message m = message();
    if (c.forwarder) m.client_host = "mx1.lists.example";
    Decision d = decide(m, evaluated(c.e), o);
    EXPECT_EQ(d.action, c.action) << c.name;
    EXPECT_EQ(field(d, "action"), c.log_action) << c.name;
    EXPECT_EQ(d.counted_action, c.counted) << c.name;
    EXPECT_EQ(d.counted_result, c.e.result) << c.name;
    EXPECT_EQ(std::string(policy_name(d.applied)), c.dis) << c.name;
    EXPECT_EQ(field(d, "dis"), c.dis) << c.name;
    EXPECT_EQ(d.override_type, c.override_type) << c.name;
    EXPECT_EQ(field(d, "override"), c.override_type) << c.name;
    // Our A-R results go on whenever the message does.
    bool goes_on = c.action != A::kReject && c.action != A::kTempfail;
    EXPECT_EQ(d.authres.empty(), !goes_on) << c.name;
    EXPECT_EQ(d.hold_reason, c.action == A::kHold ? "DMARC policy of example.com" : "") << c.name;
    if (c.action == A::kReject || c.action == A::kTempfail) {
      EXPECT_FALSE(d.rcode.empty()) << c.name;
    } else {
      EXPECT_EQ(d.rcode, "") << c.name;
    }
  }
}

TEST(DmarcDecide, Replies) {
  Options o = options();
  Decision d = decide(message(), evaluated(fail(Policy::kReject)), o);
  EXPECT_EQ(d.rcode, "550");
  EXPECT_EQ(d.xcode, "5.7.1");
  EXPECT_EQ(d.text,
            "Unauthenticated email from example.com is not accepted due to the domain's DMARC "
            "policy");
  o.reject_text = "%d: no (%d)";
  EXPECT_EQ(decide(message(), evaluated(fail(Policy::kReject)), o).text,
            "example.com: no (example.com)");

  o.parsed.on_temperror = TemperrorAction::kTempfail;
  Evaluation t;
  t.result = "temperror";
  t.from_domain = "slow.example";
  d = decide(message(), evaluated(t), o);
  EXPECT_EQ(d.rcode, "451");
  EXPECT_EQ(d.xcode, "4.7.1");
  EXPECT_EQ(d.text, "DMARC policy of slow.example could not be determined, try again later");
}

TEST(DmarcDecide, ExpandRejectText) {
  EXPECT_EQ(expand_reject_text("from %d", "a.example"), "from a.example");
  EXPECT_EQ(expand_reject_text("no domain", "a.example"), "no domain");
  EXPECT_EQ(expand_reject_text("%d%d", "a"), "aa");
  // The domain is not expanded again.
  EXPECT_EQ(expand_reject_text("x %d y", "%d.example"), "x %d.example y");
  EXPECT_EQ(expand_reject_text("100% %x", "a"), "100% %x");
}

TEST(DmarcDecide, OnlyVerifiedIdentitiesAreForwarders) {
  Options o = options();  // never-reject-domains lists.example
  auto decide_with = [&](Evaluated ev, Message m = message()) { return decide(m, ev, o); };
  Evaluated ev = evaluated(fail(Policy::kReject));
  EXPECT_EQ(decide_with(ev).action, A::kReject);

  // SPF: the checked domain, with a pass, in or under the list.
  Evaluated spf = ev;
  spf.spf = {"bounces.lists.example", "pass", ""};
  EXPECT_EQ(decide_with(spf).override_type, "trusted_forwarder");
  spf.spf.result = "softfail";
  EXPECT_EQ(decide_with(spf).action, A::kReject);
  spf.spf = {"notlists.example", "pass", ""};
  EXPECT_EQ(decide_with(spf).action, A::kReject);

  // DKIM: a pass for the domain; a fail counts for nothing.
  Evaluated dkim = ev;
  dkim.dkim = {{"LISTS.example", "pass", "s1"}};
  EXPECT_EQ(decide_with(dkim).override_type, "trusted_forwarder");
  dkim.dkim = {{"lists.example", "fail", "s1"}, {"evil.example", "pass", "s2"}};
  EXPECT_EQ(decide_with(dkim).action, A::kReject);

  // The verified client host name.
  Message host = message();
  host.client_host = "lists.example.";
  EXPECT_EQ(decide_with(ev, host).override_type, "trusted_forwarder");
  host.client_host = "unknown";
  EXPECT_EQ(decide_with(ev, host).action, A::kReject);
}

TEST(DmarcArc, ReadsTheResultAndTheSealersNewestFirst) {
  common::authres::Result r{
      "arc",
      "",
      "pass",
      "",
      "(as[1].d=Orig.Example as[1].s=s1 as[2].d=lists.example. as[2].s=k)",
      {{"header", "oldest-pass", "0"}, {"smtp", "remote-ip", "198.51.100.7"}}};
  ArcVerdict v = read_arc(r);
  EXPECT_EQ(v.result, "pass");
  ASSERT_EQ(v.sealers.size(), 2u);
  EXPECT_EQ(v.sealers[0], (ArcSealer{2, "lists.example", "k"}));
  EXPECT_EQ(v.sealers[1], (ArcSealer{1, "orig.example", "s1"}));
  EXPECT_EQ(v.remote_ip, "198.51.100.7");
  EXPECT_EQ(v.summary(),
            "arc=pass as[2].d=lists.example as[2].s=k as[1].d=orig.example as[1].s=s1 "
            "remote-ip=198.51.100.7");

  // Without parentheses (a typed result in mxguard-milter), junk items skipped, bounded.
  r.comment =
      "as[3].d=c.example junk as[x].d=bad.example as[51].d=big.example as[0].d=z.example "
      "as[2].s=only-selector as[1].q=what as[1]d=no.example as[]";
  v = read_arc(r);
  ASSERT_EQ(v.sealers.size(), 1u);
  EXPECT_EQ(v.sealers[0].domain, "c.example");

  // The newest instance without its d=: no sealer at all, not the older one in its place.
  r.comment = "as[2].s=sel as[1].d=lists.example as[1].s=s1";
  EXPECT_TRUE(read_arc(r).sealers.empty());

  // Anything but pass and none is a fail; no comment, no sealers.
  r.result = "temperror";
  r.comment.clear();
  v = read_arc(r);
  EXPECT_EQ(v.result, "fail");
  EXPECT_TRUE(v.sealers.empty());
}

TEST(DmarcDecide, OnlyAnIntactChainSealedByATrustedSealerOverridesAFail) {
  Options o = options();
  o.trusted_arc_sealers = {"lists.example"};
  Evaluated ev = evaluated(fail(Policy::kReject));
  ev.arc.result = "pass";
  ev.arc.sealers = {{2, "mx.lists.example", "s"}, {1, "example.com", "s1"}};
  Decision d = decide(message(), ev, o);
  EXPECT_EQ(d.action, A::kAccept);
  EXPECT_EQ(d.applied, Policy::kNone);
  EXPECT_EQ(d.override_type, "local_policy");
  EXPECT_EQ(d.override_comment,
            "arc=pass as[2].d=mx.lists.example as[2].s=s as[1].d=example.com "
            "as[1].s=s1");
  ASSERT_TRUE(d.aggregate);
  EXPECT_EQ(d.aggregate->row.override_comment, d.override_comment);
  EXPECT_EQ(field(d, "action"), "none (trusted-arc-sealer)");
  EXPECT_EQ(field(d, "arc"), "pass/mx.lists.example");
  EXPECT_EQ(d.counted_action, "none");

  // A quarantine the same way.
  Evaluated q = ev;
  q.evaluation = fail(Policy::kQuarantine);
  EXPECT_EQ(decide(message(), q, o).action, A::kAccept);

  // Only the newest seal counts: a trusted older sealer does not vouch for the last hop.
  Evaluated older = ev;
  older.arc.sealers = {{2, "evil.example", "s"}, {1, "lists.example", "s1"}};
  EXPECT_EQ(decide(message(), older, o).action, A::kReject);
  // A broken chain or none, whoever sealed it.
  Evaluated broken = ev;
  broken.arc.result = "fail";
  EXPECT_EQ(decide(message(), broken, o).action, A::kReject);
  EXPECT_EQ(field(decide(message(), broken, o), "arc"), "fail/mx.lists.example");
  Evaluated none = evaluated(fail(Policy::kReject));
  EXPECT_EQ(decide(message(), none, o).action, A::kReject);
  EXPECT_EQ(field(decide(message(), none, o), "arc"), "(absent)");
  // Off by default: no trusted sealers, ARC changes nothing.
  Options off = options();
  EXPECT_EQ(decide(message(), ev, off).action, A::kReject);
  // A DMARC pass stays a pass with no override.
  Evaluated pass = ev;
  pass.evaluation = evaluation("pass", Policy::kReject, Policy::kNone);
  EXPECT_EQ(decide(message(), pass, o).override_type, "");
  // never-reject-domains comes first (its reason is trusted_forwarder).
  Message host = message();
  host.client_host = "lists.example";
  EXPECT_EQ(decide(host, ev, o).override_type, "trusted_forwarder");
}

TEST(DmarcDecide, AuthenticationResults) {
  Options o = options();
  Evaluated ev = evaluated(fail(Policy::kQuarantine));
  ev.spf = {"sender.example", "softfail", ""};
  Decision d = decide(message(), ev, o);
  ASSERT_EQ(d.authres.size(), 2u);
  EXPECT_EQ(d.authres[0],
            (common::authres::Result{
                "spf", "", "softfail", "", "", {{"smtp", "mailfrom", "bounce@sender.example"}}}));
  EXPECT_EQ(d.authres[1], (common::authres::Result{"dmarc",
                                                   "",
                                                   "fail",
                                                   "",
                                                   "p=quarantine dis=quarantine",
                                                   {{"header", "from", "example.com"}}}));

  // The null sender: the HELO identity.
  Message bounce = message();
  bounce.envelope_from = "";
  bounce.envelope_domain = "";
  ev.spf = {"mail.sender.example", "pass", ""};
  ev.spf_scope = "helo";
  d = decide(bounce, ev, o);
  EXPECT_EQ(d.authres[0].properties,
            (std::vector<common::authres::Property>{{"smtp", "helo", "mail.sender.example"}}));

  // Without our own SPF check: only dmarc=.
  o.spf_self_check = false;
  d = decide(message(), ev, o);
  ASSERT_EQ(d.authres.size(), 1u);
  EXPECT_EQ(d.authres[0].method, "dmarc");

  // No record: the problem as reason=, except for none.
  Evaluation perm;
  perm.result = "permerror";
  perm.from_domain = "example.com";
  perm.problem = "several DMARC records at _dmarc.example.com";
  d = decide(message(), evaluated(perm), o);
  EXPECT_EQ(d.authres[0].reason, "several DMARC records at _dmarc.example.com");
  EXPECT_EQ(d.authres[0].comment, "");
  Evaluation none;
  none.from_domain = "example.com";
  none.problem = "no DMARC record";
  d = decide(message(), evaluated(none), o);
  EXPECT_EQ(d.authres[0].reason, "");
  EXPECT_EQ(d.authres[0].result, "none");

  // The applied disposition, not the policy's, after an override.
  o.enforce = false;
  d = decide(message(), evaluated(fail(Policy::kReject)), o);
  EXPECT_EQ(d.authres[0].comment, "p=reject dis=none");
}

TEST(DmarcDecide, AggregateRow) {
  Options o = options();
  Evaluated ev = evaluated(fail(Policy::kReject));
  ev.evaluation.spf_aligned = true;  // (inconsistent with fail, but shows the field's source)
  ev.dkim = {{"example.com", "fail", "s1"}};
  ev.spf = {"sender.example", "pass", ""};
  Decision d = decide(message(), ev, o);
  ASSERT_TRUE(d.aggregate);
  EXPECT_EQ(d.aggregate->policy.domain, "example.com");
  EXPECT_EQ(d.aggregate->policy.p, "reject");
  EXPECT_EQ(d.aggregate->policy.rua, "mailto:agg@example.com");
  Row row;
  row.source_ip = "192.0.2.7";
  row.disposition = "reject";
  row.dkim_eval = "fail";
  row.spf_eval = "pass";
  row.override_type = "";
  row.header_from = "example.com";
  row.envelope_from = "sender.example";
  row.dkim = ev.dkim;
  row.spf = ev.spf;
  row.spf_scope = "mfrom";
  EXPECT_EQ(d.aggregate->row, row);

  // The override is reported.
  o.enforce = false;
  d = decide(message(), ev, o);
  ASSERT_TRUE(d.aggregate);
  EXPECT_EQ(d.aggregate->row.disposition, "none");
  EXPECT_EQ(d.aggregate->row.override_type, "local_policy");

  // Not counted: reports off, no record, no rua=.
  o.aggregate_reports = false;
  EXPECT_FALSE(decide(message(), ev, o).aggregate);
  o.aggregate_reports = true;
  Evaluated no_rua = ev;
  no_rua.evaluation.record = record(Policy::kReject, false);
  EXPECT_FALSE(decide(message(), no_rua, o).aggregate);
  Evaluation none;
  none.from_domain = "example.com";
  EXPECT_FALSE(decide(message(), evaluated(none), o).aggregate);
}

TEST(DmarcDecide, LogLine) {
  Options o = options();
  Evaluated ev = evaluated(fail(Policy::kReject));
  ev.dkim = {{"example.com", "fail", "s1"}, {"other.example", "pass", "s2"}};
  Message m = message();
  m.forged_authres = 1;
  EXPECT_EQ(decide(m, ev, o).log, (Fields{{"dmarc", "fail"},
                                          {"action", "reject"},
                                          {"from", "example.com"},
                                          {"policy_domain", "example.com"},
                                          {"p", "reject"},
                                          {"dis", "reject"},
                                          {"dkim", "fail/example.com,pass/other.example"},
                                          {"spf", "softfail/sender.example"},
                                          {"aligned", ""},
                                          {"override", ""},
                                          {"problem", ""},
                                          {"client", "192.0.2.7"},
                                          {"forged_ar_removed", "1"}}));

  Evaluation none;
  none.from_domain = "example.com";
  none.problem = "no DMARC record";
  Evaluated nothing = evaluated(none);
  nothing.spf = {"", "none", ""};
  Decision d = decide(message(), nothing, o);
  EXPECT_EQ(field(d, "policy_domain"), "-");
  EXPECT_EQ(field(d, "p"), "-");
  EXPECT_EQ(field(d, "dkim"), "none");
  EXPECT_EQ(field(d, "spf"), "none/-");
  EXPECT_EQ(field(d, "problem"), "no DMARC record");

  const std::vector<std::tuple<bool, bool, std::string>> alignments = {
      {true, false, "dkim"}, {false, true, "spf"}, {true, true, "dkim,spf"}};
  for (const auto& [dkim, spf, aligned] : alignments) {
    Evaluation e = evaluation("pass", Policy::kReject, Policy::kNone);
    e.dkim_aligned = dkim;
    e.spf_aligned = spf;
    EXPECT_EQ(field(decide(message(), evaluated(e), o), "aligned"), aligned);
  }
}

TEST(DmarcStrictest, FailWithTheStrictestDispositionWins) {
  EXPECT_EQ(strictest({}).result, "none");
  EXPECT_EQ(strictest({}).from_domain, "");
  auto named = [](Evaluation e, std::string domain) {
    e.from_domain = std::move(domain);
    return e;
  };
  Evaluation pass = named(evaluation("pass", Policy::kReject, Policy::kNone), "pass.example");
  Evaluation none;
  none.from_domain = "none.example";
  Evaluation perm = named(evaluation("permerror", Policy::kNone, Policy::kNone), "perm.example");
  Evaluation temp = named(evaluation("temperror", Policy::kNone, Policy::kNone), "temp.example");
  Evaluation fail_none = named(fail(Policy::kNone), "fn.example");
  Evaluation fail_q = named(fail(Policy::kQuarantine), "fq.example");
  Evaluation fail_r = named(fail(Policy::kReject), "fr.example");
  EXPECT_EQ(strictest({pass, none}).from_domain, "none.example");
  EXPECT_EQ(strictest({none, perm, pass}).from_domain, "perm.example");
  EXPECT_EQ(strictest({perm, temp}).from_domain, "temp.example");
  EXPECT_EQ(strictest({temp, fail_none}).from_domain, "fn.example");
  EXPECT_EQ(strictest({fail_r, fail_q, fail_none}).from_domain, "fr.example");
  EXPECT_EQ(strictest({fail_q, temp, fail_r, pass}).from_domain, "fr.example");
  // The first of equals.
  EXPECT_EQ(strictest({pass, named(pass, "second.example")}).from_domain, "pass.example");
}

TEST(DmarcInOrUnder, Matching) {
  const std::vector<std::string> list{"Lists.Example", "other.example."};
  EXPECT_TRUE(in_or_under("lists.example", list));
  EXPECT_TRUE(in_or_under("MX1.lists.example.", list));
  EXPECT_TRUE(in_or_under("a.b.other.example", list));
  EXPECT_FALSE(in_or_under("notlists.example", list));
  EXPECT_FALSE(in_or_under("example", list));
  EXPECT_FALSE(in_or_under("", list));
  EXPECT_FALSE(in_or_under("lists.example", {}));
}

}  // namespace
}  // namespace mxguard::milter::dmarc
