// This host's name, for authserv-ids, Received-SPF receivers and X-Greylist headers when the
// configuration names none. Must never fail: falls back to "localhost".
#pragma once

#include <string>

namespace mxguard::common::util {

std::string host_name();

}  // namespace mxguard::common::util
