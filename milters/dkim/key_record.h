// DKIM key records as published in DNS (RFC 6376 §3.6.1, RFC 8463): the tag-list parser and
// the judgement of a published selector against one of our private keys. One judge for
// `mxguard-keygen test`, `mxguard-keygen rotate` and mxguard-dnscheck, so the tool that
// switches signing to a new selector and the tool that checks it can never disagree.
// Everything but check_published_key() is pure (no DNS). Must never call a record a match
// unless it carries exactly our public key, usable for mail with our hash.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/resolver.h"
#include "milters/dkim/keys.h"

namespace mxguard::milter::dkim {

// One key record's tags. Unknown tags are ignored (§3.6.1); values keep their case.
struct KeyRecord {
  bool has_v = false;
  std::string k = "rsa";       // key type
  std::string p;               // base64, white space removed; empty: the key is revoked
  std::vector<std::string> h;  // acceptable hash algorithms; empty: all
  std::vector<std::string> s;  // service types; empty: "*"
  std::vector<std::string> t;  // flags: "y" testing, "s" strict
};

struct KeyRecordParse {
  std::optional<KeyRecord> record;
  std::string error;  // set when record is empty: why the tag-list is invalid
};

// Parses one TXT record (strings concatenated). Invalid (§3.2, §3.6.1): a tag name that is not
// ALPHA *(ALPHA / DIGIT / "_"), a tag without "=", a duplicate tag, v= not first or not
// "DKIM1", a value with characters outside %x21-7E and white space, no p=, a p= that is not
// base64. Empty elements (";;", a trailing ";") are tolerated, as verifiers do.
KeyRecordParse parse_key_record(std::string_view txt);

enum class KeyStatus {
  kMatch,      // exactly one record, our key type and public key, usable for email/sha256
  kMissing,    // NXDOMAIN or no TXT record at the name
  kDnsError,   // SERVFAIL, timeout or another DNS failure: nothing can be said
  kBadSyntax,  // several TXT records, or one that is not a valid key record
  kRevoked,    // p= empty
  kWrongType,  // k= is not our key's type
  kWrongKey,   // p= is another key
  kUnusable,   // s= excludes email or h= excludes sha256: verifiers will not use it for us
};
// "match", "missing", "dns-error", "bad-syntax", "revoked", "wrong-type", "wrong-key",
// "unusable": the problem codes of mxguard-dnscheck --json.
std::string_view key_status_name(KeyStatus s);

struct KeyCheck {
  KeyStatus status = KeyStatus::kMissing;
  std::string name;                    // SELECTOR._domainkey.DOMAIN
  std::vector<std::string> published;  // the TXT records found there
  std::string message;                 // what matched, or what is wrong
  std::vector<std::string> warnings;   // usable, but worth a look (t=y: testing mode)
  bool ok() const { return status == KeyStatus::kMatch; }
};

// Judges what a TXT lookup of `name` returned against `key`.
KeyCheck judge_key_record(const common::dns::Answer& answer, const std::string& name,
                          const PrivateKey& key);

// Looks up SELECTOR._domainkey.DOMAIN (blocking, at most the resolver's timeout) and judges it.
KeyCheck check_published_key(common::dns::Resolver& resolver, const std::string& domain,
                             const std::string& selector, const PrivateKey& key);

}  // namespace mxguard::milter::dkim
