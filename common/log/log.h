// Logging for every mxguard daemon: syslog (facility mail, ident = binary name) or stderr,
// Postfix-style severities, and the one-line-per-decision helper that starts with the queue id.
// Must never throw from a log call: logging is what we do when something already went wrong.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxguard::common::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };
enum class Target { kSyslog, kStderr };

// Parses "debug|info|warning|error"; throws std::invalid_argument otherwise.
Level parse_level(std::string_view text);
std::string_view level_name(Level level);
Target parse_target(std::string_view text);

// Process-wide set-up, called once by the daemon skeleton before any thread starts.
void init(std::string_view ident, Target target, Level min_level);
void set_level(Level min_level);
Level level();

// Writes one line. Severity prefixes follow Postfix: "warning: ", "error: ", "fatal: ";
// info and debug lines carry no prefix.
void write(Level level, std::string_view message) noexcept;

inline void debug(std::string_view m) noexcept { write(Level::kDebug, m); }
inline void info(std::string_view m) noexcept { write(Level::kInfo, m); }
inline void warning(std::string_view m) noexcept { write(Level::kWarning, m); }
inline void error(std::string_view m) noexcept { write(Level::kError, m); }

// A key=value field of a decision line. Values with spaces, quotes or '=' are quoted.
using Field = std::pair<std::string_view, std::string_view>;

// Formats "QUEUEID: k1=v1 k2=v2" with NOQUEUE when queue_id is empty.
std::string format_decision(std::string_view queue_id, std::initializer_list<Field> fields);
// Logs exactly one decision line at info level.
void decision(std::string_view queue_id, std::initializer_list<Field> fields) noexcept;

// The same for fields a decision function computed (it owns their text), in order.
using OwnedFields = std::vector<std::pair<std::string, std::string>>;
std::string format_decision(std::string_view queue_id, const OwnedFields& fields);
void decision(std::string_view queue_id, const OwnedFields& fields) noexcept;

// Appends key=value to out (with a leading space when out is not empty), quoting as needed.
void append_field(std::string& out, std::string_view key, std::string_view value);

}  // namespace mxguard::common::log
