// libpsl wrapper (see orgdomain.h).
#include "milters/dmarc/orgdomain.h"

#include <libpsl.h>

#include <stdexcept>

#include "common/mail/from.h"

namespace mxguard::milter::dmarc {

using common::mail::normalize_domain;
using common::mail::valid_domain;

OrgDomains::OrgDomains(const std::string& path) : psl_(psl_load_file(path.c_str())) {
  if (!psl_) throw std::runtime_error("cannot load the public suffix list " + path);
}

OrgDomains::~OrgDomains() { psl_free(psl_); }

std::string OrgDomains::organizational(std::string_view domain) const {
  std::string d = normalize_domain(domain);
  if (d.empty()) return d;
  const char* reg = psl_registrable_domain(psl_, d.c_str());
  return reg ? std::string(reg) : d;
}

bool OrgDomains::aligned(std::string_view a, std::string_view b, bool strict) const {
  std::string x = normalize_domain(a), y = normalize_domain(b);
  if (x.empty() || y.empty() || !valid_domain(x) || !valid_domain(y)) return false;
  if (strict) return x == y;
  return organizational(x) == organizational(y);
}

}  // namespace mxguard::milter::dmarc
