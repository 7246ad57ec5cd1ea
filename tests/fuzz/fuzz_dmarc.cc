// Fuzzes mxguard-dmarc's network-input parsers: the From header parser and the DMARC record
// parser (a hostile sender writes the first, a hostile zone the second), and the aggregate
// row decoder (Redis content). Never crash or over-read; a From that parses yields valid
// domains only, within the limits; a record that parses has values in range.
// Seeds: corpus/dmarc/ (From headers and records from the tests).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/mail/from.h"
#include "milters/dmarc/aggregate.h"
#include "milters/dmarc/record.h"

namespace dmarc = mxguard::milter::dmarc;
namespace mail = mxguard::common::mail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  mail::FromLimits limits{4096, 20};
  mail::FromParse from = mail::parse_from(text, limits);
  if (from.ok()) {
    if (from.mailboxes.empty() || from.mailboxes.size() > limits.max_mailboxes) std::abort();
    for (const auto& m : from.mailboxes) {
      // The local part may be empty: `""@example.com` is a valid quoted string (RFC 5322
      // §3.2.4), and DMARC reads only the domain.
      if (!mail::valid_domain(m.domain)) std::abort();
    }
  } else if (!from.mailboxes.empty()) {
    std::abort();
  }
  dmarc::RecordParse rec = dmarc::parse_record(text);
  if (rec.record) {
    if (rec.record->pct < 0 || rec.record->pct > 100) std::abort();
    if (!dmarc::is_dmarc_record(text)) std::abort();
    for (const auto& u : rec.record->rua) {
      if (u.address.find('@') == std::string::npos) std::abort();
    }
  } else if (rec.error.empty()) {
    std::abort();
  }
  try {
    dmarc::Row row = dmarc::decode_row(std::string(text));
    // What decodes must encode to something that decodes; encoding cleans and caps fields, so
    // after one round trip a row must be stable (a second round trip changes nothing).
    dmarc::Row once = dmarc::decode_row(dmarc::encode_row(row));
    if (!(dmarc::decode_row(dmarc::encode_row(once)) == once)) std::abort();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
