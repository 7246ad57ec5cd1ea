// DKIM key records for ARC (see arc_keys.h).
#include "milters/dkim/arc_keys.h"

#include "common/util/strings.h"
#include "milters/dkim/key_record.h"
#include "milters/dkim/keys.h"

namespace mxguard::milter::dkim {

arc::KeyAnswer arc_key_answer(const KeyLookupResult& looked_up) {
  using Status = arc::KeyAnswer::Status;
  arc::KeyAnswer a;
  a.detail = looked_up.detail;
  switch (looked_up.kind) {
    case KeyLookupResult::Kind::kNotFound:
      a.status = Status::kNotFound;
      return a;
    case KeyLookupResult::Kind::kTempError:
      a.status = Status::kTempError;
      return a;
    case KeyLookupResult::Kind::kFound:
      break;
  }
  auto parsed = parse_key_record(looked_up.record);
  if (!parsed.record) {
    a.status = Status::kInvalid;
    a.detail = parsed.error;
    return a;
  }
  const KeyRecord& r = *parsed.record;
  if (r.p.empty()) {
    a.status = Status::kRevoked;
    return a;
  }
  if (!r.s.empty()) {
    bool email = false;
    for (const auto& s : r.s) email |= s == "*" || common::util::iequals(s, "email");
    if (!email) {
      a.status = Status::kInvalid;
      a.detail = "s= excludes email";
      return a;
    }
  }
  try {
    a.public_key = base64_decode(r.p);
  } catch (const std::invalid_argument&) {
    a.status = Status::kInvalid;
    a.detail = "p= is not base64";
    return a;
  }
  a.status = Status::kFound;
  a.key_type = r.k;
  a.hashes = r.h;
  return a;
}

arc::KeyFetcher arc_key_fetcher(KeyLookup lookup) {
  return [lookup = std::move(lookup)](const std::string& domain, const std::string& selector) {
    return arc_key_answer(lookup(selector + "._domainkey." + domain));
  };
}

}  // namespace mxguard::milter::dkim
