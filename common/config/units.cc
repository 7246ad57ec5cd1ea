// Implementation of duration and size parsing (see units.h).
#include "common/config/units.h"

#include <cctype>
#include <charconv>
#include <limits>
#include <stdexcept>

namespace mxguard::common::config {
namespace {

// Splits "25M" into 25 and "M"; throws on an empty or non-numeric prefix or on overflow.
std::uint64_t split_number(std::string_view text, std::string_view& unit) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0)
    throw std::invalid_argument("expected a number with a unit, got '" + std::string(text) + "'");
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, n);
  if (ec != std::errc() || ptr != text.data() + i) {
    throw std::invalid_argument("number out of range: '" + std::string(text) + "'");
  }
  unit = text.substr(i);
  return n;
}

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, std::string_view text) {
  if (b != 0 && a > std::numeric_limits<std::int64_t>::max() / b) {
    throw std::invalid_argument("value out of range: '" + std::string(text) + "'");
  }
  return a * b;
}

}  // namespace

Duration parse_duration(std::string_view text) {
  std::string_view unit;
  std::uint64_t n = split_number(text, unit);
  std::uint64_t ms_per = 0;
  if (unit == "ms")
    ms_per = 1;
  else if (unit.empty() || unit == "s")
    ms_per = 1000;
  else if (unit == "m")
    ms_per = 60'000;
  else if (unit == "h")
    ms_per = 3'600'000;
  else if (unit == "d")
    ms_per = 86'400'000;
  else if (unit == "w")
    ms_per = 7 * 86'400'000ULL;
  else {
    throw std::invalid_argument("unknown duration unit in '" + std::string(text) +
                                "' (use ms, s, m, h, d or w)");
  }
  Duration d;
  d.value = std::chrono::milliseconds(static_cast<std::int64_t>(checked_mul(n, ms_per, text)));
  return d;
}

std::string format_duration(Duration d) {
  auto ms = static_cast<std::uint64_t>(d.value.count());
  struct U {
    std::uint64_t ms;
    const char* name;
  };
  static constexpr U kUnits[] = {
      {7 * 86'400'000ULL, "w"}, {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  if (ms == 0) return "0s";
  for (const auto& u : kUnits) {
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.name;
  }
  return std::to_string(ms) + "ms";
}

Size parse_size(std::string_view text) {
  std::string_view unit;
  std::uint64_t n = split_number(text, unit);
  std::string u;
  for (char c : unit) u.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (u.size() == 2 && u[1] == 'B') u.pop_back();
  if (u == "B") u.clear();
  std::uint64_t mult = 0;
  if (u.empty())
    mult = 1;
  else if (u == "K")
    mult = 1024;
  else if (u == "M")
    mult = 1024 * 1024;
  else if (u == "G")
    mult = 1024ULL * 1024 * 1024;
  else {
    throw std::invalid_argument("unknown size unit in '" + std::string(text) + "' (use k, M or G)");
  }
  return Size{checked_mul(n, mult, text)};
}

std::string format_size(Size s) {
  static constexpr std::pair<std::uint64_t, const char*> kUnits[] = {
      {1024ULL * 1024 * 1024, "G"}, {1024 * 1024, "M"}, {1024, "k"}};
  if (s.bytes == 0) return "0";
  for (const auto& [mult, name] : kUnits) {
    if (s.bytes % mult == 0) return std::to_string(s.bytes / mult) + name;
  }
  return std::to_string(s.bytes);
}

}  // namespace mxguard::common::config
