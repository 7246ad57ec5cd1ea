// Fuzzes what mxguard-dnscheck and mxguard-keygen read from a zone: the DKIM key record parser
// and the judge of a selector against our key, the SPF/DMARC/MX verdicts, and the record
// edits behind the fixes (a hostile or broken zone writes all of it). Never crash or over-read;
// a match needs a record that parses; an edited record carries the added term exactly once, and
// editing it again changes nothing. Seeds: corpus/dnscheck/ (key, SPF and DMARC records).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/util/strings.h"
#include "milters/dkim/key_record.h"
#include "milters/dkim/keygen.h"
#include "milters/dnscheck/compare.h"

namespace dkim = mxguard::milter::dkim;
namespace dnscheck = mxguard::milter::dnscheck;
namespace dns = mxguard::common::dns;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const dkim::PrivateKey key = dkim::generate_key(dkim::KeyType::kEd25519, 0);
  std::string text(reinterpret_cast<const char*>(data), size);

  auto parsed = dkim::parse_key_record(text);
  if (!parsed.record && parsed.error.empty()) std::abort();
  dns::Answer answer{dns::Status::kOk, {text}, 60};
  auto check = dkim::judge_key_record(answer, "s._domainkey.example.test", key);
  if (check.ok() && !parsed.record) std::abort();
  (void)dnscheck::judge_dkim("example.test", "s", "/k", key, check);

  const std::string term = "ip4:192.0.2.1";
  std::string spf = dnscheck::spf_with_terms(text, {term});
  if (mxguard::common::util::lower(spf).find(term) == std::string::npos) std::abort();
  if (dnscheck::spf_with_terms(spf, {term}) != spf) std::abort();
  const std::string uri = "mailto:a@example.test";
  std::string dmarc = dnscheck::dmarc_with_rua(text, uri);
  if (dmarc.find("rua=" + uri) == std::string::npos) std::abort();
  if (dnscheck::dmarc_with_rua(dmarc, uri) != dmarc) std::abort();
  (void)dkim::zone_txt("example.test.", text);

  dnscheck::SpfFacts spf_facts;
  spf_facts.txt = answer;
  (void)dnscheck::judge_spf("example.test", spf_facts, {"192.0.2.1"});
  dnscheck::DmarcFacts dmarc_facts;
  dmarc_facts.at_domain = answer;
  (void)dnscheck::judge_dmarc("example.test", dmarc_facts, "postmaster@example.test");
  dnscheck::MxFacts mx;
  // MX data reaches the verdict as parsed records (the resolver's wire parser, fuzz_dns_wire):
  // any exchange name, any preference.
  mx.mx.status = dns::Status::kOk;
  mx.mx.records.push_back({static_cast<std::uint16_t>(size), text});
  mx.targets.push_back({text, dns::Status::kNoData, dns::Status::kNxDomain});
  (void)dnscheck::judge_mx("example.test", mx, {"mx.example.test"});
  return 0;
}
