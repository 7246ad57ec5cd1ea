// Small string helpers the suite kept writing again (STYLE.md: "Helpers written again"), as
// Postfix keeps its stringops in one place. ASCII only: DNS names, tags and option values.
// Must never allocate more than its result, nor depend on the C locale.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::util {

// ASCII lower case.
std::string lower(std::string_view s);
// Without leading and trailing white space (space, tab, CR, LF, VT, FF).
std::string_view trim(std::string_view s);
// Without leading and trailing blanks: space and tab only (HTTP's OWS, RFC 9110 §5.6.3), for
// values where any other control character is part of the value and must not vanish.
std::string_view trim_blanks(std::string_view s);
// Case-insensitive (ASCII) equality.
bool iequals(std::string_view a, std::string_view b);
// Splits on every occurrence of `sep`; "a;;b" gives "a", "", "b"; "" gives one empty piece.
// The pieces are views into `s`: it must outlive them (not a temporary in a range-for).
std::vector<std::string_view> split(std::string_view s, char sep);

}  // namespace mxguard::common::util
