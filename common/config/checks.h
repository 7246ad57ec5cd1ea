// Checks that many Options::validate() share: a value from a fixed set, a network list, a
// value that a parser of the daemon accepts. Each throws config::OptionError naming the option,
// so the parser reports it with its file:line.
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/net/ip.h"

namespace mxguard::common::config {

// `value` must be one of `choices`: "expected a|b|c" otherwise.
inline void require_one_of(const std::string& option, const std::string& value,
                           std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (value == c) return;
    list += list.empty() ? c : std::string("|") + c;
  }
  throw OptionError(option, "expected " + list);
}

// Every entry must be an address or CIDR network (net::NetworkList's syntax).
inline void require_networks(const std::string& option, const std::vector<std::string>& list) {
  try {
    net::NetworkList n(list);
  } catch (const std::invalid_argument& ex) {
    throw OptionError(option, ex.what());
  }
}

// `parse(value)` must not throw std::invalid_argument; its message becomes the error.
// Returns what `parse` returns, so a validate() can keep the parsed value.
template <class Parse>
auto require_parses(const std::string& option, const std::string& value, Parse parse) {
  try {
    return parse(value);
  } catch (const std::invalid_argument& ex) {
    throw OptionError(option, ex.what());
  }
}

}  // namespace mxguard::common::config
