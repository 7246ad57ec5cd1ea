// Selective greylisting's decision (greylist_selector.h) for every mode and condition, the
// option parsing into typed form, and the HELO rule, without DNS or Redis.
#include "policyd/greylist_selector.h"

#include <gtest/gtest.h>

#include "common/config/config.h"
#include "policyd/options.h"

namespace mxguard::policyd {
namespace {

using common::config::OptionError;

SelectionPolicy policy(const std::string& mode, std::vector<std::string> when = {},
                       std::vector<std::string> trusted = {}) {
  SelectionOptions o;
  o.mode = mode;
  if (!when.empty()) o.suspicious_when = std::move(when);
  o.trust_spf_pass_domains = std::move(trusted);
  return parse_selection(o);
}

SelectionInputs inputs(SpfInput spf, std::string helo = "mail.example.org",
                       std::optional<std::string> dnsbl = {}, std::optional<std::string> dnswl = {},
                       std::string domain = "") {
  SelectionInputs in;
  in.spf = spf;
  in.helo = std::move(helo);
  in.lists.dnsbl = std::move(dnsbl);
  in.lists.dnswl = std::move(dnswl);
  in.spf_pass_domain = std::move(domain);
  return in;
}

TEST(GreylistSelectorTest, ModeAllGreylistsEveryoneAndIsInactiveWithoutAllowLists) {
  auto p = policy("all");
  EXPECT_FALSE(p.active());
  auto s = select_greylisting(p, inputs(SpfInput::kPass, "x", std::string("zen.example")));
  EXPECT_TRUE(s.greylist);
  EXPECT_EQ(s.label(), "mode-all");
  // A DNSBL listing changes nothing in mode all, and it is never looked up there.
  SelectionOptions o;
  o.dnsbl_sites = {DnsListSite::parse("zen.example")};
  EXPECT_FALSE(parse_selection(o).wants_dnsbl());
  EXPECT_FALSE(parse_selection(o).active());
}

TEST(GreylistSelectorTest, ModeNeverGreylistsNoOneAndConsultsNoList) {
  SelectionOptions o;
  o.mode = "never";
  o.dnsbl_sites = {DnsListSite::parse("zen.example")};
  o.dnswl_sites = {DnsListSite::parse("wl.example")};
  auto p = parse_selection(o);
  EXPECT_TRUE(p.active());
  EXPECT_FALSE(p.wants_dnsbl());
  EXPECT_FALSE(p.wants_dnswl());
  auto s = select_greylisting(p, inputs(SpfInput::kFail, "[1.2.3.4]", std::string("zen.example")));
  EXPECT_FALSE(s.greylist);
  EXPECT_EQ(s.label(), "mode-never");
}

TEST(GreylistSelectorTest, SuspiciousGreylistsOnlyWhenAConditionHolds) {
  auto p = policy("suspicious");
  struct Case {
    SelectionInputs in;
    bool greylist;
    std::string label;
  };
  std::vector<Case> cases{
      {inputs(SpfInput::kPass), false, "not-suspicious"},
      {inputs(SpfInput::kNeutral), false, "not-suspicious"},     // not in the default set
      {inputs(SpfInput::kTemperror), false, "not-suspicious"},   // not in the default set
      {inputs(SpfInput::kPermerror), false, "not-suspicious"},   // not in the default set
      {inputs(SpfInput::kNotChecked), false, "not-suspicious"},  // e.g. spf-skip-addresses
      {inputs(SpfInput::kFail), true, "spf-fail"},
      {inputs(SpfInput::kSoftfail), true, "spf-softfail"},
      {inputs(SpfInput::kNone), true, "spf-none"},
      {inputs(SpfInput::kPass, "localhost"), true, "helo-not-fqdn"},
      {inputs(SpfInput::kPass, "[192.0.2.1]"), true, "helo-not-fqdn"},
      {inputs(SpfInput::kPass, ""), true, "helo-not-fqdn"},
      {inputs(SpfInput::kPass, "mail.example.org", std::string("zen.example")), true,
       "dnsbl:zen.example"},
      // The first condition in the documented order names the reason.
      {inputs(SpfInput::kSoftfail, "x", std::string("zen.example")), true, "dnsbl:zen.example"},
      {inputs(SpfInput::kSoftfail, "x"), true, "spf-softfail"},
  };
  for (const auto& c : cases) {
    auto s = select_greylisting(p, c.in);
    EXPECT_EQ(s.greylist, c.greylist) << c.label;
    EXPECT_EQ(s.label(), c.label);
  }
}

TEST(GreylistSelectorTest, OnlyTheConfiguredConditionsCount) {
  auto p = policy("suspicious", {"dnsbl", "spf-temperror"});
  EXPECT_FALSE(select_greylisting(p, inputs(SpfInput::kFail, "x")).greylist);
  EXPECT_EQ(select_greylisting(p, inputs(SpfInput::kTemperror)).label(), "spf-temperror");
  EXPECT_TRUE(select_greylisting(p, inputs(SpfInput::kPass, "h.example", std::string("bl.example")))
                  .greylist);
  auto q = policy("suspicious", {"spf-neutral", "spf-permerror"});
  EXPECT_EQ(select_greylisting(q, inputs(SpfInput::kNeutral)).label(), "spf-neutral");
  EXPECT_EQ(select_greylisting(q, inputs(SpfInput::kPermerror)).label(), "spf-permerror");
  EXPECT_FALSE(
      select_greylisting(q, inputs(SpfInput::kPass, "h.example", std::string("bl.example")))
          .greylist);
}

TEST(GreylistSelectorTest, DnswlSkipsInModesAllAndSuspiciousEvenWhenListedOnADnsbl) {
  for (const char* mode : {"all", "suspicious"}) {
    auto s = select_greylisting(policy(mode),
                                inputs(SpfInput::kFail, "[1.2.3.4]", std::string("zen.example"),
                                       std::string("wl.example")));
    EXPECT_FALSE(s.greylist) << mode;
    EXPECT_EQ(s.label(), "dnswl:wl.example");
    EXPECT_EQ(s.reason_name(), "dnswl");
  }
}

TEST(GreylistSelectorTest, SpfPassForATrustedDomainOrSubdomainSkips) {
  for (const char* mode : {"all", "suspicious"}) {
    auto p = policy(mode, {}, {"Example.ORG."});
    EXPECT_TRUE(p.active());
    auto s = select_greylisting(
        p, inputs(SpfInput::kPass, "x", std::string("zen.example"), {}, "bounces.example.org"));
    EXPECT_FALSE(s.greylist) << mode;
    EXPECT_EQ(s.label(), "trusted-spf-pass:example.org");
    // Not a subdomain, only a suffix: greylisted (mode all) or judged (suspicious).
    EXPECT_TRUE(select_greylisting(p, inputs(SpfInput::kPass, "x", std::string("zen.example"), {},
                                             "badexample.org"))
                    .greylist);
    // The domain without a pass does not count.
    EXPECT_TRUE(
        select_greylisting(p, inputs(SpfInput::kSoftfail, "x", {}, {}, "example.org")).greylist);
  }
}

TEST(GreylistSelectorTest, OptionsAreParsedOnceWithErrorsNamingTheOption) {
  auto p = policy("suspicious");
  EXPECT_EQ(p.when.count(), 5u);  // the default set
  try {
    policy("sometimes");
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "greylist-mode");
  }
  try {
    policy("suspicious", {"dnsbl", "spf-fial"});
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "greylist-suspicious-when");
    EXPECT_NE(std::string(e.what()).find("spf-fial"), std::string::npos);
  }
  EXPECT_THROW(policy("all", {}, {"localhost"}), OptionError);
  EXPECT_THROW(policy("all", {}, {"user@example.org"}), OptionError);
}

TEST(GreylistSelectorTest, SpfConditionsAndTrustedDomainsNeedSpfBeforeGreylist) {
  Options o;
  o.greylist.whitelist_clients.clear();
  o.greylist.whitelist_recipients.clear();
  o.selection.mode = "suspicious";
  o.checks = {"greylist"};
  try {
    o.validate();
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "greylist-suspicious-when");
  }
  o.checks = {"greylist", "spf"};
  EXPECT_THROW(o.validate(), OptionError);
  o.checks = {"spf", "greylist"};
  EXPECT_NO_THROW(o.validate());
  // Without SPF conditions, suspicious mode runs without SPF.
  o.checks = {"greylist"};
  o.selection.suspicious_when = {"dnsbl", "helo-not-fqdn"};
  EXPECT_NO_THROW(o.validate());
  o.selection.trust_spf_pass_domains = {"example.org"};
  try {
    o.validate();
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "greylist-trust-spf-pass-domains");
  }
}

TEST(GreylistSelectorTest, SpfResultsMapToInputs) {
  using common::spf::Result;
  EXPECT_EQ(spf_input(std::nullopt), SpfInput::kNotChecked);
  EXPECT_EQ(spf_input(Result::kPass), SpfInput::kPass);
  EXPECT_EQ(spf_input(Result::kFail), SpfInput::kFail);
  EXPECT_EQ(spf_input(Result::kSoftfail), SpfInput::kSoftfail);
  EXPECT_EQ(spf_input(Result::kNone), SpfInput::kNone);
  EXPECT_EQ(spf_input(Result::kNeutral), SpfInput::kNeutral);
  EXPECT_EQ(spf_input(Result::kTemperror), SpfInput::kTemperror);
  EXPECT_EQ(spf_input(Result::kPermerror), SpfInput::kPermerror);
}

TEST(GreylistSelectorTest, HeloIsFqdn) {
  for (const char* ok : {"mail.example.org", "mail.example.org.", "a.b", "x-1.example"}) {
    EXPECT_TRUE(helo_is_fqdn(ok)) << ok;
  }
  for (const char* bad : {"", "localhost", "[192.0.2.1]", "[IPv6:2001:db8::1]", "192.0.2.1",
                          "2001:db8::1", "host.123", ".", ".example", "example."}) {
    EXPECT_FALSE(helo_is_fqdn(bad)) << bad;
  }
}

}  // namespace
}  // namespace mxguard::policyd
