// Organizational domains (RFC 7489 §3.2) from the Public Suffix List through libpsl, read from
// the system's list (Debian's publicsuffix package) so that list updates reach us with apt.
// Must never call a public suffix an organizational domain of someone else's (x.co.uk's is
// x.co.uk, co.uk's own is co.uk).
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct psl_ctx_st;

namespace mxguard::milter::dmarc {

class OrgDomains {
 public:
  // Loads a list file (.dafsa or .dat); throws std::runtime_error when it cannot.
  explicit OrgDomains(const std::string& path);
  ~OrgDomains();
  OrgDomains(const OrgDomains&) = delete;
  OrgDomains& operator=(const OrgDomains&) = delete;

  // The organizational domain of a (normalized, lower-case) domain: the registrable domain,
  // or the domain itself when it is a public suffix or has no listed suffix above one label.
  std::string organizational(std::string_view domain) const;
  // Relaxed alignment: same organizational domain. Strict: the same name.
  bool aligned(std::string_view a, std::string_view b, bool strict) const;

 private:
  psl_ctx_st* psl_;
};

}  // namespace mxguard::milter::dmarc
