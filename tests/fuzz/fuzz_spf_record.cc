// Fuzzes the SPF record and macro-string parsers (common/spf/record.h) with arbitrary text, as
// a hostile zone can publish: never crash or over-read; a record that parses must parse again
// to the same terms, and what it holds must be consistent (ip4/ip6 carry a network, include
// and exists a domain-spec, cidr lengths in range). Seeds: the RFC 7208/4408 suites' records
// (corpus/spf_record/).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/spf/record.h"
#include "common/spf/spf.h"

namespace spf = mxguard::common::spf;

namespace {

void check_consistent(const spf::Record& r) {
  using K = spf::Mechanism::Kind;
  for (const auto& m : r.mechanisms) {
    if ((m.kind == K::kIp4 || m.kind == K::kIp6) && !m.network) std::abort();
    if ((m.kind == K::kInclude || m.kind == K::kExists) && !m.domain) std::abort();
    if (m.cidr4 < 0 || m.cidr4 > 32 || m.cidr6 < 0 || m.cidr6 > 128) std::abort();
    if (m.text.empty()) std::abort();
    if (m.domain) {
      for (const auto& p : m.domain->parts) {
        // c, r and t are for explanations only (RFC 7208 §7.3).
        if (!p.literal && (p.letter == 'c' || p.letter == 'r' || p.letter == 't')) std::abort();
        if (!p.literal && p.digits < 0) std::abort();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // Macro strings in every context: domain-spec, explanation text, modifier value.
  for (auto [domain_spec, explanation] : {std::pair{true, false}, {false, true}, {false, false}}) {
    std::string problem;
    auto ms = spf::parse_macro_string(input, domain_spec, explanation, &problem);
    if (!ms && problem.empty()) std::abort();  // a refusal always says why
    if (ms) {
      auto again = spf::parse_macro_string(input, domain_spec, explanation, nullptr);
      if (!again || again->parts.size() != ms->parts.size()) std::abort();
    }
  }

  (void)spf::is_spf_record(input);
  (void)spf::valid_domain(input);
  (void)spf::valid_dns_name(input);

  std::string problem;
  auto rec = spf::parse_record(input, &problem);
  if (!rec) {
    if (problem.empty()) std::abort();
    if (spf::parse_check(input)) std::abort();
    return 0;
  }
  check_consistent(*rec);
  auto again = spf::parse_record(std::string(input), nullptr);
  if (!again || again->mechanisms.size() != rec->mechanisms.size() ||
      again->redirect.has_value() != rec->redirect.has_value() ||
      again->exp.has_value() != rec->exp.has_value()) {
    std::abort();
  }
  for (std::size_t i = 0; i < rec->mechanisms.size(); ++i) {
    if (again->mechanisms[i].kind != rec->mechanisms[i].kind ||
        again->mechanisms[i].text != rec->mechanisms[i].text) {
      std::abort();
    }
  }
  return 0;
}
