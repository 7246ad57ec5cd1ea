// Implementation of host_name() (see host.h).
#include "common/util/host.h"

#include <unistd.h>

namespace mxguard::common::util {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace mxguard::common::util
