// Value types with units for options: durations ("300s", "5m", "35d", "250ms") and sizes
// ("25M", "64k"). Parsing is strict: a value that is not exactly a number and a known unit is
// an error, never a silent default. Must never produce an infinite or negative value.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace mxguard::common::config {

struct Duration {
  std::chrono::milliseconds value{0};
  constexpr Duration() = default;
  template <class Rep, class Period>
  constexpr Duration(std::chrono::duration<Rep, Period> d)  // NOLINT: implicit by design
      : value(std::chrono::duration_cast<std::chrono::milliseconds>(d)) {}
  constexpr auto count_ms() const { return value.count(); }
  constexpr std::chrono::seconds seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(value);
  }
  friend constexpr bool operator==(const Duration&, const Duration&) = default;
};

struct Size {
  std::uint64_t bytes = 0;
  friend constexpr bool operator==(const Size&, const Size&) = default;
};

// "250ms", "30s", "5m", "2h", "35d", "1w"; a bare number means seconds (postgrey's habit).
// Throws std::invalid_argument.
Duration parse_duration(std::string_view text);
// Shortest exact form: "300s" → "5m", "1500ms" stays "1500ms".
std::string format_duration(Duration d);

// "1024", "64k", "25M", "1G" (binary multiples, case-insensitive, optional trailing B).
Size parse_size(std::string_view text);
std::string format_size(Size s);

}  // namespace mxguard::common::config
