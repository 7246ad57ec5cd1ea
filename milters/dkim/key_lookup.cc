// Key records through common/dns (see key_lookup.h).
#include "milters/dkim/key_lookup.h"

namespace mxguard::milter::dkim {

KeyLookupResult lookup_key_record(common::dns::Resolver& resolver, const std::string& name) {
  auto a = resolver.lookup_txt(name);
  using common::dns::Status;
  switch (a.status) {
    case Status::kOk: {
      // Several TXT records at a key name: take the one that carries a key.
      for (const auto& r : a.records) {
        if (r.find("p=") != std::string::npos) return {KeyLookupResult::Kind::kFound, r, "ok"};
      }
      return {KeyLookupResult::Kind::kFound, a.records.front(), "ok"};
    }
    case Status::kNxDomain:
    case Status::kNoData:
      return {KeyLookupResult::Kind::kNotFound, "",
              std::string(common::dns::status_name(a.status))};
    default:
      return {KeyLookupResult::Kind::kTempError, "",
              std::string(common::dns::status_name(a.status))};
  }
}

}  // namespace mxguard::milter::dkim
