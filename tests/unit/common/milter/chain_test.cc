// Tests common/milter/chain: which filter of a chain gets which step, and what the chain
// answers. The sessions here never call the MTA, so a Context without libmilter suffices.
#include "common/milter/chain.h"

#include <gtest/gtest.h>
#include <libmilter/mfapi.h>

#include <string>
#include <vector>

namespace mxguard::common::milter {
namespace {

// A Context with no MTA behind it: no macros, and every reply or modification refused.
class NullContext : public Context {
 protected:
  const char* symbol(const std::string&) const override { return nullptr; }
  bool mta_set_reply(const std::string&, const std::string&, const std::string&) override {
    return false;
  }
  bool mta_add_header(const std::string&, const std::string&) override { return false; }
  bool mta_insert_header(int, const std::string&, const std::string&) override { return false; }
  bool mta_change_header(const std::string&, int, const std::string&) override { return false; }
  bool mta_quarantine(const std::string&) override { return false; }
  void mta_progress() override {}
};

// Records the steps its sessions see, and answers `answer` at the step named `at`.
class FakeFilter : public Filter {
 public:
  FakeFilter(std::string name, unsigned long protocol, bool non_smtp = false)
      : non_smtp_(non_smtp) {
    options_.name = std::move(name);
    options_.protocol = protocol;
  }
  const MilterOptions& milter_options() const override { return options_; }
  bool wants_non_smtp() const override { return non_smtp_; }
  std::unique_ptr<Session> new_session() override { return std::make_unique<Rec>(*this); }

  std::vector<std::string> seen;
  std::string at;
  Status answer = Status::kContinue;

 private:
  struct Rec : Session {
    explicit Rec(FakeFilter& f) : f_(f) {}
    Status step(const std::string& s) {
      f_.seen.push_back(s);
      return s == f_.at ? f_.answer : Status::kContinue;
    }
    Status on_connect(Context&, const ConnectInfo&) override { return step("connect"); }
    Status on_mail_from(Context&, const std::vector<std::string>&) override { return step("mail"); }
    Status on_rcpt(Context&, const std::vector<std::string>&) override { return step("rcpt"); }
    Status on_header(Context&, std::string_view, std::string_view v) override {
      return step("header:" + std::string(v));
    }
    Status on_body(Context&, std::string_view) override { return step("body"); }
    FakeFilter& f_;
  };
  MilterOptions options_;
  bool non_smtp_;
};

ConnectInfo from(const std::string& address) {
  ConnectInfo i;
  i.address = address;
  i.hostname = address.empty() ? "localhost" : "client.example";
  return i;
}

TEST(ChainOptions, AStepIsSkippedOnlyWhenNoFilterWantsIt) {
  FakeFilter a("a", SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_HDR_LEADSPC);
  FakeFilter b("b", SMFIP_NORCPT | SMFIP_NOBODY);
  MilterOptions o = chain_options({}, {&a, &b});
  EXPECT_NE(o.protocol & SMFIP_NORCPT, 0u);  // neither wants RCPT
  EXPECT_EQ(o.protocol & SMFIP_NOHELO, 0u);  // b wants HELO
  EXPECT_EQ(o.protocol & SMFIP_NOBODY, 0u);  // a wants the body
  EXPECT_NE(o.protocol & SMFIP_HDR_LEADSPC, 0u);
}

TEST(ChainSession, StepsGoOnlyToTheFiltersThatWantThem) {
  FakeFilter a("a", SMFIP_NORCPT | SMFIP_HDR_LEADSPC);
  FakeFilter b("b", SMFIP_NOBODY);
  ChainSession chain({&a, &b});
  NullContext c;
  EXPECT_EQ(chain.on_connect(c, from("192.0.2.1")), Status::kContinue);
  EXPECT_EQ(chain.on_mail_from(c, {"<s@example.org>"}), Status::kContinue);
  EXPECT_EQ(chain.on_rcpt(c, {"<r@example.net>"}), Status::kContinue);
  EXPECT_EQ(chain.on_header(c, "Subject", " hi"), Status::kContinue);
  // b declines the body; once a is done with it too, the chain asks the MTA to skip the rest.
  EXPECT_EQ(chain.on_body(c, "x"), Status::kContinue);
  EXPECT_EQ(a.seen, (std::vector<std::string>{"connect", "mail", "header: hi", "body"}));
  // Without HDR_LEADSPC, b gets the value without the one space after the colon.
  EXPECT_EQ(b.seen, (std::vector<std::string>{"connect", "mail", "rcpt", "header:hi"}));
}

TEST(ChainSession, ARejectEndsTheStepForTheFiltersAfterIt) {
  FakeFilter a("a", 0), b("b", 0);
  a.at = "rcpt";
  a.answer = Status::kReject;
  ChainSession chain({&a, &b});
  NullContext c;
  chain.on_connect(c, from("192.0.2.1"));
  chain.on_mail_from(c, {"<s@example.org>"});
  EXPECT_EQ(chain.on_rcpt(c, {"<r@example.net>"}), Status::kReject);
  EXPECT_EQ(b.seen, (std::vector<std::string>{"connect", "mail"}));
}

TEST(ChainSession, AnAcceptEndsOnlyThatFiltersPartOfTheMessage) {
  FakeFilter a("a", 0), b("b", 0);
  a.at = "mail";
  a.answer = Status::kAccept;
  ChainSession chain({&a, &b});
  NullContext c;
  chain.on_connect(c, from("192.0.2.1"));
  EXPECT_EQ(chain.on_mail_from(c, {"<s@example.org>"}), Status::kContinue);
  chain.on_rcpt(c, {"<r@example.net>"});
  EXPECT_EQ(a.seen, (std::vector<std::string>{"connect", "mail"}));
  EXPECT_EQ(b.seen, (std::vector<std::string>{"connect", "mail", "rcpt"}));
  // The next message goes to both again.
  a.at.clear();
  chain.on_mail_from(c, {"<t@example.org>"});
  chain.on_rcpt(c, {"<r@example.net>"});
  EXPECT_EQ(a.seen.back(), "rcpt");
}

TEST(ChainSession, LocalSubmissionsGoOnlyToFiltersThatWantThem) {
  FakeFilter signer("signer", 0, /*non_smtp=*/true), scanner("scanner", 0);
  ChainSession chain({&signer, &scanner});
  NullContext c;
  chain.on_connect(c, from(""));  // no client address: sendmail(1) through non_smtpd_milters
  chain.on_mail_from(c, {"<root@example.org>"});
  chain.on_rcpt(c, {"<r@example.net>"});
  EXPECT_EQ(signer.seen, (std::vector<std::string>{"connect", "mail", "rcpt"}));
  EXPECT_TRUE(scanner.seen.empty());
}

// A filter whose callbacks throw, with the given on-internal-error outcome.
struct ThrowingFilter : Filter {
  explicit ThrowingFilter(Status outcome) {
    o.name = "thrower";
    o.on_internal_error = outcome;
  }
  MilterOptions o;
  const MilterOptions& milter_options() const override { return o; }
  std::unique_ptr<Session> new_session() override {
    struct S : Session {
      Status on_mail_from(Context&, const std::vector<std::string>&) override {
        throw std::runtime_error("boom");
      }
    };
    return std::make_unique<S>();
  }
};

TEST(ChainSession, AFilterExceptionTakesThatFiltersOwnOutcome) {
  // on-internal-error = accept: the message goes on without this filter, the others see it.
  ThrowingFilter thrower(Status::kAccept);
  FakeFilter ok("ok", 0);
  ChainSession chain({&thrower, &ok});
  NullContext c;
  chain.on_connect(c, from("192.0.2.1"));
  EXPECT_EQ(chain.on_mail_from(c, {"<s@example.org>"}), Status::kContinue);
  chain.on_rcpt(c, {"<r@example.net>"});
  EXPECT_EQ(ok.seen, (std::vector<std::string>{"connect", "mail", "rcpt"}));
  // on-internal-error = discard: the chain answers that, and nobody after it is asked.
  ThrowingFilter strict(Status::kDiscard);
  FakeFilter after("after", 0);
  ChainSession chain2({&strict, &after});
  chain2.on_connect(c, from("192.0.2.1"));
  EXPECT_EQ(chain2.on_mail_from(c, {"<s@example.org>"}), Status::kDiscard);
  EXPECT_EQ(after.seen, (std::vector<std::string>{"connect"}));
}

}  // namespace
}  // namespace mxguard::common::milter
