// DMARC policy records (RFC 7489 §6.3, plus DMARCbis np=): a tolerant parser that keeps what
// the RFC says to keep (unknown tags ignored, bad optional values replaced by defaults, an
// invalid p= with a usable rua= read as p=none, §6.6.3) and refuses everything else.
// Must never turn an unparsable record into a stricter policy than the domain published.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::milter::dmarc {

enum class Policy { kNone, kQuarantine, kReject };
std::string_view policy_name(Policy p);  // "none", "quarantine", "reject"
std::optional<Policy> parse_policy(std::string_view text);

enum class Alignment { kRelaxed, kStrict };

// A report destination. address is local@domain from one strict parse (see
// parse_report_address): the domain that RFC 7489 §7.1 verification checks is the one the
// report is sent to, and the address is safe as a sendmail argument and in a To: header.
struct ReportUri {
  std::string address;         // local@domain, percent-decoded once
  std::string domain;          // the part after '@', lower case
  std::uint64_t max_size = 0;  // "!10m": 0 when unlimited

  // The URI again, as parse_uri_list reads it back ("mailto:a@b.example!10m"): how the
  // aggregate store keeps it in Redis. Exact round trip, no second decoding.
  std::string encode() const;
};

// A report address as we accept it: local-part of letters, digits and . _ - + = (a dot-atom
// without leading, trailing or double dots, at most 64 octets), one '@', and a host name of
// two or more LDH labels. Everything else (quotes, comments, spaces, controls, a second '@',
// '%' or '!' routing) is refused: nullopt.
struct ReportAddress {
  std::string local;
  std::string domain;  // lower case
};
std::optional<ReportAddress> parse_report_address(std::string_view address);

struct Record {
  Policy p = Policy::kNone;
  std::optional<Policy> sp;
  std::optional<Policy> np;  // DMARCbis: non-existent subdomains
  Alignment adkim = Alignment::kRelaxed;
  Alignment aspf = Alignment::kRelaxed;
  int pct = 100;
  std::vector<ReportUri> rua;
  std::vector<ReportUri> ruf;
  std::string fo = "0";
  std::uint32_t ri = 86400;
  bool p_repaired = false;           // p= was missing or invalid; rua= made it p=none (§6.6.3)
  std::vector<std::string> ignored;  // tags ignored as invalid (for logs)
};

struct RecordParse {
  std::optional<Record> record;
  std::string error;  // set when record is empty
};

// True when a TXT record is a DMARC record candidate: starts with "v=DMARC1" (§6.6.3: others
// are discarded before counting).
bool is_dmarc_record(std::string_view txt);

RecordParse parse_record(std::string_view txt);

// Parses one rua/ruf URI list; invalid or non-mailto URIs are skipped.
std::vector<ReportUri> parse_uri_list(std::string_view value);

}  // namespace mxguard::milter::dmarc
