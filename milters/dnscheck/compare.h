// mxguard-dnscheck's decisions: what DNS publishes for a domain against what we expect, one
// pure function per record type, fed with lookup results gathered elsewhere (dnscheck.cc), so
// every verdict is unit-tested without a resolver. The parsers are the suite's own: common/spf
// for SPF syntax and lookup counting, milters/dmarc's record parser, milters/dkim's key record
// judge (the one `mxguard-keygen rotate` trusts before it switches selectors).
// Must never suggest a fix that the same checks would refuse, and never read a DNS failure as
// "no record".
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/dns/resolver.h"
#include "common/spf/spf.h"
#include "milters/dkim/key_record.h"
#include "milters/dkim/keys.h"
#include "milters/dnscheck/report.h"

namespace mxguard::milter::dnscheck {

// RFC 7208 §4.6.4. The walk below raises the evaluator's own limits so that it can count past
// them and say by how much a record is over.
inline constexpr int kSpfMaxDnsTerms = 10;
inline constexpr int kSpfMaxVoidLookups = 2;

struct SpfFacts {
  common::dns::Answer txt;  // TXT at the domain
  // check_host() for an address no record designates (240.0.0.1, reserved), with raised
  // limits: every term is evaluated, so dns_terms and void_lookups count the whole record,
  // includes and redirects included.
  common::spf::Outcome walk;
  // check_host() with the standard limits for each of our sending addresses.
  std::vector<std::pair<std::string, common::spf::Outcome>> sending;
};
Check judge_spf(const std::string& domain, const SpfFacts& facts,
                const std::vector<std::string>& sending_ips);

// The DKIM verdict for one selector we sign with (the judgement is dkim::judge_key_record's).
Check judge_dkim(const std::string& domain, const std::string& selector,
                 const std::string& key_path, const dkim::PrivateKey& key,
                 const dkim::KeyCheck& check);

struct DmarcFacts {
  common::dns::Answer at_domain;  // TXT at _dmarc.DOMAIN
  std::string org_domain;         // the organizational domain when it differs from DOMAIN
  common::dns::Answer at_org;     // TXT at _dmarc.ORG, looked up only when needed
};
// `rua` is the address a suggested record names (local@domain).
Check judge_dmarc(const std::string& domain, const DmarcFacts& facts, const std::string& rua);

struct MxTarget {
  std::string host;
  common::dns::Status a = common::dns::Status::kNoData;
  common::dns::Status aaaa = common::dns::Status::kNoData;
};
struct MxFacts {
  common::dns::MxAnswer mx;
  std::vector<MxTarget> targets;  // one per MX host, in preference order
};
Check judge_mx(const std::string& domain, const MxFacts& facts,
               const std::vector<std::string>& expected_mx);

// Pure record editing for fixes (they read DNS text: tests/fuzz/fuzz_dnscheck.cc).
// `record` with each term of `terms` it lacks inserted before its "all" mechanism or its
// redirect= (at the end when it has neither); runs of spaces become one.
std::string spf_with_terms(std::string_view record, const std::vector<std::string>& terms);
// "ip4:192.0.2.1" / "ip6:2001:db8::1"; empty when `ip` is not an address.
std::string spf_term(std::string_view ip);
// `record` with its rua= replaced by (or, without one, extended with) rua=URI; empty elements
// dropped, elements joined with "; ".
std::string dmarc_with_rua(std::string_view record, std::string_view uri);

}  // namespace mxguard::milter::dnscheck
