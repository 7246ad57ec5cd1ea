// The Options-struct pattern shared by every mxguard binary. A daemon declares one struct with
// in-class defaults (the only place a default lives) and binds each member to one kebab-case
// name with a help text. The same name works on the command line (Boost.Program_options) and
// in the config file ("name = value"). Errors name their origin: "file:line" or "--name".
// Must never accept a value it cannot parse, and never silently ignore an unknown name.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/units.h"

namespace mxguard::common::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown from an Options::validate() for a cross-field problem of one option; the parser
// prefixes the place that option was set.
class OptionError : public std::invalid_argument {
 public:
  OptionError(std::string option, const std::string& message)
      : std::invalid_argument(message), option_(std::move(option)) {}
  const std::string& option() const { return option_; }

 private:
  std::string option_;
};

// Parsing and printing of one value type. Overload these for a new option type.
void parse_value(std::string_view text, std::string& out);
void parse_value(std::string_view text, bool& out);  // yes/no, true/false, on/off, 1/0
void parse_value(std::string_view text, int& out);
void parse_value(std::string_view text, unsigned& out);
void parse_value(std::string_view text, std::uint64_t& out);
void parse_value(std::string_view text, double& out);
void parse_value(std::string_view text, Duration& out);
void parse_value(std::string_view text, Size& out);
void parse_value(std::string_view text, std::chrono::milliseconds& out);  // units as Duration
std::string format_value(const std::string& v);
std::string format_value(bool v);
std::string format_value(int v);
std::string format_value(unsigned v);
std::string format_value(std::uint64_t v);
std::string format_value(double v);
std::string format_value(Duration v);
std::string format_value(Size v);
std::string format_value(std::chrono::milliseconds v);

// Splits a list value on commas and white space ("a, b c" → a, b, c).
std::vector<std::string> split_list(std::string_view text);

class Binder {
 public:
  template <class T>
  void add(std::string name, T& target, std::string help) {
    add_entry(
        std::move(name), std::move(help), false, std::is_same_v<T, bool>,
        [&target](std::string_view v) { parse_value(v, target); },
        [&target] { return format_value(target); });
  }
  // A list option: repeatable on the command line, comma/space separated anywhere. A source
  // that sets it replaces the earlier source's list (the command line replaces the file).
  template <class T>
  void add(std::string name, std::vector<T>& target, std::string help) {
    add_entry(
        std::move(name), std::move(help), true, false,
        [&target](std::string_view v) {
          for (const auto& item : split_list(v)) {
            T value{};
            parse_value(item, value);
            target.push_back(std::move(value));
          }
        },
        [&target] {
          std::string out;
          for (const auto& v : target) {
            if (!out.empty()) out += ", ";
            out += format_value(v);
          }
          return out;
        },
        [&target] { target.clear(); });
  }

  struct Entry {
    std::string name;
    std::string help;
    bool list = false;
    bool flag = false;
    std::function<void(std::string_view)> parse;
    std::function<std::string()> format;
    std::function<void()> clear;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view name) const;

 private:
  void add_entry(std::string name, std::string help, bool list, bool flag,
                 std::function<void(std::string_view)> parse, std::function<std::string()> format,
                 std::function<void()> clear = {});
  std::vector<Entry> entries_;
};

// What a binary is, for --help and --version.
struct ProgramInfo {
  std::string name;            // e.g. "mxguard-policyd"
  std::string summary;         // one line
  std::string default_config;  // e.g. "/etc/mxguard/policyd.conf"; empty = no default file
  std::string usage_args;      // e.g. "COMMAND [ARGS…]" for CLIs with positional arguments
};

// What the command line asked for besides the options themselves.
struct Request {
  enum class Action { kRun, kHelp, kVersion, kCheckConfig, kDumpConfig };
  Action action = Action::kRun;
  std::string config_file;                    // the file actually read, empty if none
  std::vector<std::string> positional;        // only when ProgramInfo::usage_args is set
  std::map<std::string, std::string> origin;  // option name → "file:line" or "--name"
};

// Parses defaults ← config file ← command line into the bound struct. Throws ConfigError with
// the origin of the offending value. `validate` runs after everything is applied; an
// OptionError it throws is reported with the option's origin.
Request parse(const ProgramInfo& info, Binder& binder, int argc, const char* const* argv,
              const std::function<void()>& validate);

// Reads "name = value" lines from a file into the binder (used by parse and by reload).
void apply_file(const std::string& path, Binder& binder,
                std::map<std::string, std::string>* origin);

std::string help_text(const ProgramInfo& info, const Binder& binder);
std::string dump_config(const Binder& binder);

}  // namespace mxguard::common::config
