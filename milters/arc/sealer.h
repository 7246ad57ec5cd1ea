// ARC sealing (RFC 8617 §5.1): the ARC-Authentication-Results, ARC-Message-Signature and
// ARC-Seal of instance N+1 for a Message whose chain was validated first. The chain result
// becomes cv=; a failed chain gets cv=fail and a seal over our own set only (§5.1.2).
// Must never write cv=pass for a chain that did not pass, never add a set after one that
// says cv=fail, past instance 50, or on a chain that failed only because a key lookup failed
// temporarily (that judgement would be permanent for every later hop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "milters/arc/chain.h"
#include "milters/arc/crypto.h"

namespace mxguard::milter::arc {

// The AMS h= default: the fields RFC 6376 §5.4.1 recommends, those a forwarder's changes show
// in, and DKIM-Signature (so the AMS covers what DMARC evaluated). Only names present in the
// message are signed, every instance of them.
const std::vector<std::string>& default_seal_headers();

struct SealRequest {
  std::string domain, selector;
  EVP_PKEY* key = nullptr;  // RSA or Ed25519; the caller owns it
  std::string authserv_id;
  // The RFC 8601 results this hop has for the message (what follows "authserv-id;" in an
  // Authentication-Results header), e.g. "dkim=pass header.d=example.org; arc=none".
  std::string results;
  std::vector<std::string> headers = default_seal_headers();
  std::int64_t timestamp = 0;   // t=; 0: none
  std::string fold = "\r\n\t";  // between tags ("\n\t" for libmilter, which adds the CR)
};

struct SealedSet {
  int instance = 0;
  // Header values, each starting with a space; insert AS on top, then AMS, then AAR.
  std::string seal, message_signature, auth_results;
};

struct SealOutcome {
  std::optional<SealedSet> set;
  std::string skipped;  // why no set was made (when set is empty)
};

// Throws std::runtime_error only when OpenSSL fails to sign with a valid key.
SealOutcome seal(const Message& message, const ChainResult& chain, const SealRequest& request);

}  // namespace mxguard::milter::arc
