// Tests milters/dmarc/options.cc: the action options are parsed into enums once, by
// validate() on the daemon's own parse path, and bad values are refused naming the option.
#include "milters/dmarc/options.h"

#include <gtest/gtest.h>

#include "tests/fixtures/parse_options.h"

namespace mxguard::milter::dmarc {
namespace {

int parse(Options& o, std::vector<std::string> args, std::string* err = nullptr) {
  return testing::parse_args("mxguard-dmarc", o, std::move(args), err);
}

TEST(DmarcOptions, DefaultsParseToTheDefaultEnums) {
  Options o;
  ASSERT_EQ(parse(o, {}), -1);
  EXPECT_EQ(o.parsed.quarantine_action, QuarantineAction::kHold);
  EXPECT_EQ(o.parsed.on_temperror, TemperrorAction::kAccept);
  EXPECT_EQ(o.parsed.on_bad_from, BadFromAction::kReject);
  EXPECT_EQ(o.parsed.multi_from, MultiFromAction::kReject);
  // The in-class defaults of `parsed` agree with the strings, validated or not.
  Options fresh;
  EXPECT_EQ(parse_quarantine_action(fresh.quarantine_action), fresh.parsed.quarantine_action);
  EXPECT_EQ(parse_temperror_action(fresh.on_temperror), fresh.parsed.on_temperror);
  EXPECT_EQ(parse_bad_from_action(fresh.on_bad_from), fresh.parsed.on_bad_from);
  EXPECT_EQ(parse_multi_from_action(fresh.multi_from), fresh.parsed.multi_from);
}

TEST(DmarcOptions, ValidateFillsTheEnums) {
  Options o;
  ASSERT_EQ(parse(o, {"--quarantine-action", "header", "--on-temperror", "tempfail",
                      "--on-bad-from", "accept", "--multi-from", "evaluate"}),
            -1);
  EXPECT_EQ(o.quarantine_action, "header");  // the strings stay (--dump-config)
  EXPECT_EQ(o.parsed.quarantine_action, QuarantineAction::kHeader);
  EXPECT_EQ(o.parsed.on_temperror, TemperrorAction::kTempfail);
  EXPECT_EQ(o.parsed.on_bad_from, BadFromAction::kAccept);
  EXPECT_EQ(o.parsed.multi_from, MultiFromAction::kEvaluate);

  // validate() alone, as a reload runs it.
  Options p;
  p.quarantine_action = "accept";
  p.validate();
  EXPECT_EQ(p.parsed.quarantine_action, QuarantineAction::kAccept);
}

TEST(DmarcOptions, BadValuesAreRefusedNamingTheOption) {
  struct Case {
    const char* option;
    const char* expected;
  };
  for (const Case& c :
       {Case{"--quarantine-action", "quarantine-action: expected hold|header|accept"},
        Case{"--on-temperror", "on-temperror: expected accept|tempfail"},
        Case{"--on-bad-from", "on-bad-from: expected accept|reject"},
        Case{"--multi-from", "multi-from: expected reject|evaluate"},
        Case{"--on-internal-error", "on-internal-error: expected accept|tempfail|reject"}}) {
    Options o;
    std::string err;
    EXPECT_EQ(parse(o, {c.option, "bogus"}, &err), common::daemon::kExitConfig) << c.option;
    EXPECT_NE(err.find(c.expected), std::string::npos) << err;
  }
  Options o;
  std::string err;
  EXPECT_EQ(parse(o, {"--trusted-arc-sealers", "lists.example, bad..example"}, &err),
            common::daemon::kExitConfig);
  EXPECT_NE(err.find("trusted-arc-sealers: not a domain: bad..example"), std::string::npos) << err;
}

TEST(DmarcOptions, ParseFunctions) {
  EXPECT_EQ(parse_quarantine_action("hold"), QuarantineAction::kHold);
  EXPECT_EQ(parse_quarantine_action("accept"), QuarantineAction::kAccept);
  EXPECT_THROW(parse_quarantine_action("Hold"), std::invalid_argument);
  EXPECT_EQ(parse_temperror_action("tempfail"), TemperrorAction::kTempfail);
  EXPECT_THROW(parse_temperror_action("reject"), std::invalid_argument);
  EXPECT_EQ(parse_bad_from_action("reject"), BadFromAction::kReject);
  EXPECT_THROW(parse_bad_from_action(""), std::invalid_argument);
  EXPECT_EQ(parse_multi_from_action("evaluate"), MultiFromAction::kEvaluate);
  EXPECT_THROW(parse_multi_from_action("accept"), std::invalid_argument);
}

}  // namespace
}  // namespace mxguard::milter::dmarc
