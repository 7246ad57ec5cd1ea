// DKIM key records through common/dns: the KeyLookup the milter hands its Verifiers. A blocking
// lookup on the shared resolver, bounded by --dns-timeout (a libmilter callback thread may
// wait that long; see docs/ARCHITECTURE.md, Departures). Must never include libmilter, and
// never turn a timeout or SERVFAIL into "no key" (that would be a permerror instead of
// temperror).
#pragma once

#include "common/dns/resolver.h"
#include "milters/dkim/verifier.h"

namespace mxguard::milter::dkim {

KeyLookupResult lookup_key_record(common::dns::Resolver& resolver, const std::string& name);

}  // namespace mxguard::milter::dkim
