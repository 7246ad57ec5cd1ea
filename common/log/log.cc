// Implementation of common/log: a tiny facade over syslog(3) and stderr.
#include "common/log/log.h"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <stdexcept>

namespace mxguard::common::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<Target> g_target{Target::kStderr};
std::string g_ident = "mxguard";  // written once in init(), before threads exist
std::mutex g_stderr_mutex;

int syslog_priority(Level level) {
  switch (level) {
    case Level::kDebug:
      return LOG_DEBUG;
    case Level::kInfo:
      return LOG_INFO;
    case Level::kWarning:
      return LOG_WARNING;
    case Level::kError:
      return LOG_ERR;
    case Level::kFatal:
      return LOG_CRIT;
  }
  return LOG_INFO;
}

std::string_view prefix(Level level) {
  switch (level) {
    case Level::kWarning:
      return "warning: ";
    case Level::kError:
      return "error: ";
    case Level::kFatal:
      return "fatal: ";
    default:
      return "";
  }
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\t' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

}  // namespace

Level parse_level(std::string_view text) {
  if (text == "debug") return Level::kDebug;
  if (text == "info") return Level::kInfo;
  if (text == "warning") return Level::kWarning;
  if (text == "error") return Level::kError;
  throw std::invalid_argument("expected debug, info, warning or error");
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kFatal:
      return "fatal";
  }
  return "info";
}

Target parse_target(std::string_view text) {
  if (text == "syslog") return Target::kSyslog;
  if (text == "stderr") return Target::kStderr;
  throw std::invalid_argument("expected syslog or stderr");
}

void init(std::string_view ident, Target target, Level min_level) {
  g_ident = std::string(ident);
  g_level = min_level;
  g_target = target;
  if (target == Target::kSyslog) {
    openlog(g_ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
  }
}

void set_level(Level min_level) { g_level = min_level; }
Level level() { return g_level; }

void write(Level lvl, std::string_view message) noexcept {
  if (lvl < g_level.load(std::memory_order_relaxed)) return;
  try {
    std::string line;
    line.reserve(message.size() + 16);
    line.append(prefix(lvl));
    // Control characters from the network never reach the log verbatim.
    for (char c : message) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        line.append("\\x");
        line.push_back(kHex[u >> 4]);
        line.push_back(kHex[u & 15]);
      } else {
        line.push_back(c);
      }
    }
    if (g_target.load(std::memory_order_relaxed) == Target::kSyslog) {
      syslog(syslog_priority(lvl), "%s", line.c_str());
    } else {
      std::lock_guard lock(g_stderr_mutex);
      std::fprintf(stderr, "%s[%d]: %s\n", g_ident.c_str(), static_cast<int>(getpid()),
                   line.c_str());
      std::fflush(stderr);
    }
  } catch (...) {
    // Out of memory while logging: nothing sensible left to do, and a log call must not throw.
  }
}

void append_field(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out.push_back(' ');
  out.append(key);
  out.push_back('=');
  if (!needs_quotes(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

namespace {

template <class Fields>
std::string format_fields(std::string_view queue_id, const Fields& fields) {
  std::string line(queue_id.empty() ? std::string_view("NOQUEUE") : queue_id);
  line.append(":");
  std::string rest;
  for (const auto& [k, v] : fields) append_field(rest, k, v);
  if (!rest.empty()) {
    line.push_back(' ');
    line.append(rest);
  }
  return line;
}

}  // namespace

std::string format_decision(std::string_view queue_id, std::initializer_list<Field> fields) {
  return format_fields(queue_id, fields);
}

std::string format_decision(std::string_view queue_id, const OwnedFields& fields) {
  return format_fields(queue_id, fields);
}

void decision(std::string_view queue_id, std::initializer_list<Field> fields) noexcept {
  try {
    write(Level::kInfo, format_decision(queue_id, fields));
  } catch (...) {
  }
}

void decision(std::string_view queue_id, const OwnedFields& fields) noexcept {
  try {
    write(Level::kInfo, format_decision(queue_id, fields));
  } catch (...) {
  }
}

}  // namespace mxguard::common::log
