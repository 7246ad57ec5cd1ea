// RFC 5322 From header parsing: who a message claims to come from. The one parser of the suite:
// mxguard-dmarc evaluates these domains and mxguard-dkim picks its signing keys by the same
// author, so the two can never disagree about who wrote a message.
// Tolerant of what real senders write (display names, quoted commas, nested comments, groups,
// RFC 2047 encoded words, obsolete empty list members) and strict about the address itself.
// Must never report a domain that a mail reader would not show as the author's, never read past
// its limits, and never succeed on input it cannot fully account for (the CVE-2019-16378 and
// CVE-2021-34555 bypasses came from parsers that did).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::mail {

struct Mailbox {
  std::string local;   // as written (quotes removed)
  std::string domain;  // lower case, no trailing dot, ASCII (A-labels)
};

struct FromLimits {
  std::size_t max_length = 8192;    // longer header values are refused
  std::size_t max_mailboxes = 100;  // more addresses are refused
};

struct FromParse {
  std::vector<Mailbox> mailboxes;
  std::string error;  // empty on success
  bool ok() const { return error.empty(); }
};

// Parses the value of one From header field (unfolded or folded).
FromParse parse_from(std::string_view value, const FromLimits& limits = {});

// Syntax check of a domain name as DMARC uses it (letters, digits, hyphens, underscores in
// labels of 1-63 octets, total at most 253); expects lower case.
bool valid_domain(std::string_view domain);

// Lower-cases, strips leading and trailing dots; empty when nothing is left.
std::string normalize_domain(std::string_view domain);

}  // namespace mxguard::common::mail
