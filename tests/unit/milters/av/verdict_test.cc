// Tests milters/av/verdict.cc: outcome → action mapping for every --on-* setting, reply and
// header texts, allow-list matching.
#include "milters/av/verdict.h"

#include <gtest/gtest.h>

namespace mxguard::milter::av {
namespace {

using A = Decision::Action;
using K = ScanOutcome::Kind;

ScanOutcome infected(std::string name) { return {K::kInfected, std::move(name), ""}; }

TEST(AvVerdict, CleanAndSkippedAreAcceptedWithTheHeader) {
  Policy p;
  for (K k : {K::kClean, K::kSkipped}) {
    Decision d = decide({k, "", ""}, p);
    EXPECT_EQ(d.action, A::kAccept);
    EXPECT_TRUE(d.add_status_header);
  }
}

TEST(AvVerdict, InfectedDefaultIsReject550WithTheName) {
  Decision d = decide(infected("Win.Test.EICAR_HDB-1"), Policy{});
  EXPECT_EQ(d.action, A::kReject);
  EXPECT_EQ(d.rcode, "550");
  EXPECT_EQ(d.xcode, "5.7.1");
  EXPECT_EQ(d.text, "Virus found: Win.Test.EICAR_HDB-1");
  EXPECT_FALSE(d.add_status_header);
}

TEST(AvVerdict, InfectedActions) {
  Policy p;
  p.on_infected = InfectedAction::kDiscard;
  EXPECT_EQ(decide(infected("X"), p).action, A::kDiscard);
  p.on_infected = InfectedAction::kQuarantine;
  EXPECT_EQ(decide(infected("X"), p).action, A::kQuarantine);
  EXPECT_TRUE(decide(infected("X"), p).add_status_header);
  p.on_infected = InfectedAction::kAccept;
  EXPECT_EQ(decide(infected("X"), p).action, A::kAccept);
  p.on_infected = InfectedAction::kReject;
  p.reject_text = "Rejected: %v (100%% sure) %x";
  EXPECT_EQ(decide(infected("Foo"), p).text, "Rejected: Foo (100% sure) %x");
}

TEST(AvVerdict, ErrorDefaultIsTempfailAndNeverAccept) {
  Decision d = decide({K::kError, "", "timeout"}, Policy{});
  EXPECT_EQ(d.action, A::kTempfail);
  EXPECT_EQ(d.rcode, "451");
  EXPECT_EQ(d.xcode, "4.3.0");
  Policy p;
  p.on_error = ErrorAction::kAccept;
  d = decide({K::kError, "", "timeout"}, p);
  EXPECT_EQ(d.action, A::kAccept);
  EXPECT_TRUE(d.add_status_header);
}

TEST(AvVerdict, OversizeActions) {
  Policy p;
  EXPECT_EQ(decide({K::kOversize, "", ""}, p).action, A::kAccept);
  p.on_oversize = OversizeAction::kTempfail;
  EXPECT_EQ(decide({K::kOversize, "", ""}, p).rcode, "451");
  p.on_oversize = OversizeAction::kReject;
  Decision d = decide({K::kOversize, "", ""}, p);
  EXPECT_EQ(d.action, A::kReject);
  EXPECT_EQ(d.rcode, "552");
}

TEST(AvVerdict, ParseActions) {
  EXPECT_EQ(parse_infected_action("quarantine"), InfectedAction::kQuarantine);
  EXPECT_THROW(parse_infected_action("tempfail"), std::invalid_argument);
  EXPECT_EQ(parse_error_action("accept"), ErrorAction::kAccept);
  EXPECT_THROW(parse_error_action("reject"), std::invalid_argument);
  EXPECT_EQ(parse_oversize_action("reject"), OversizeAction::kReject);
  EXPECT_THROW(parse_oversize_action("discard"), std::invalid_argument);
}

TEST(AvStatusHeader, Forms) {
  EXPECT_EQ(status_header({K::kClean, "", ""}), "clean");
  EXPECT_EQ(status_header(infected("Win.Test.EICAR_HDB-1")), "infected (Win.Test.EICAR_HDB-1)");
  EXPECT_EQ(status_header({K::kOversize, "", ""}), "unscanned (oversize)");
  EXPECT_EQ(status_header({K::kError, "", "timeout"}), "unscanned (error)");
  EXPECT_EQ(status_header({K::kSkipped, "", "authenticated"}), "unscanned (authenticated)");
  EXPECT_EQ(status_header(infected("bad\r\nX-Injected: 1")), "infected (bad??X-Injected:?1)");
  EXPECT_EQ(scanned_header("1.2.3", "mx.example.org"), "mxguard-av 1.2.3 on mx.example.org");
}

TEST(AvAllowList, Entries) {
  std::vector<std::string> e = {"Boss@Example.org", "partner.test", ".trusted.test"};
  EXPECT_TRUE(allow_listed("<boss@example.org>", e));
  EXPECT_TRUE(allow_listed("BOSS@EXAMPLE.ORG", e));
  EXPECT_FALSE(allow_listed("other@example.org", e));
  EXPECT_TRUE(allow_listed("<x@partner.test>", e));
  EXPECT_FALSE(allow_listed("<x@sub.partner.test>", e));
  EXPECT_TRUE(allow_listed("<x@trusted.test>", e));
  EXPECT_TRUE(allow_listed("<x@a.b.trusted.test>", e));
  EXPECT_FALSE(allow_listed("<x@untrusted.test>", e));
  EXPECT_FALSE(allow_listed("<>", e));
  EXPECT_FALSE(allow_listed("", e));
  EXPECT_TRUE(valid_allow_entry("user@example.org"));
  EXPECT_TRUE(valid_allow_entry(".example.org"));
  EXPECT_FALSE(valid_allow_entry("localhost"));
  EXPECT_FALSE(valid_allow_entry("@example.org"));
  EXPECT_FALSE(valid_allow_entry("a b@example.org"));
  EXPECT_FALSE(valid_allow_entry(""));
}

}  // namespace
}  // namespace mxguard::milter::av
