// The bridge from mxguard-dkim's key lookup (DNS through common/dns, or a test's fixed
// records) to the ARC library's KeyFetcher: the TXT record at SELECTOR._domainkey.DOMAIN,
// parsed by key_record's parser (one parser for DKIM and ARC keys). Must never include
// libmilter, and never turn a DNS timeout or SERVFAIL into "no key".
#pragma once

#include "milters/arc/chain.h"
#include "milters/dkim/verifier.h"

namespace mxguard::milter::dkim {

arc::KeyAnswer arc_key_answer(const KeyLookupResult& looked_up);
arc::KeyFetcher arc_key_fetcher(KeyLookup lookup);

}  // namespace mxguard::milter::dkim
