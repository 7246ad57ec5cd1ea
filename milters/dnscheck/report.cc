// Printing mxguard-dnscheck's report (see report.h).
#include "milters/dnscheck/report.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace mxguard::milter::dnscheck {
namespace {

// Published values come from DNS: show control characters escaped, never raw.
std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
  return out;
}

// Continuation lines of a multi-line value (a zone-file record) under the value's column.
std::string indented(std::string_view text, std::string_view indent) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '\n') out += indent;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out;
}

nlohmann::json json_list(const std::vector<std::string>& items) {
  auto out = nlohmann::json::array();
  for (const auto& i : items) out.push_back(i);
  return out;
}

}  // namespace

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kOk:
      return "ok";
    case Severity::kWarning:
      return "warning";
    case Severity::kMismatch:
      return "mismatch";
    case Severity::kError:
      return "error";
  }
  return "error";
}

std::string_view record_type_name(RecordType t) {
  switch (t) {
    case RecordType::kSpf:
      return "spf";
    case RecordType::kDkim:
      return "dkim";
    case RecordType::kDmarc:
      return "dmarc";
    case RecordType::kMx:
      return "mx";
  }
  return "spf";
}

Severity Check::status() const {
  Severity worst = Severity::kOk;
  for (const auto& p : problems) worst = std::max(worst, p.severity);
  return worst;
}

int exit_code(const Report& r) {
  for (const auto& c : r.checks) {
    if (c.status() >= Severity::kMismatch) return 1;
  }
  return 0;
}

void print_text(const Report& r, std::ostream& out) {
  constexpr std::string_view kIndent = "               ";  // under the values below
  int counts[4] = {0, 0, 0, 0};
  std::string domain;
  for (const auto& c : r.checks) {
    Severity s = c.status();
    ++counts[static_cast<int>(s)];
    if (c.domain != domain) {
      domain = c.domain;
      out << domain << "\n";
    }
    out << "  " << upper(record_type_name(c.type));
    out << std::string(7 - record_type_name(c.type).size(), ' ') << c.name << ": "
        << (s == Severity::kOk ? "ok" : upper(severity_name(s))) << "\n";
    for (const auto& p : c.problems) {
      out << "    " << severity_name(p.severity) << " (" << p.code << "): " << printable(p.message)
          << "\n";
    }
    for (const auto& n : c.notes) out << "    note: " << printable(n) << "\n";
    if (c.published.empty()) {
      out << "    published: (nothing)\n";
    }
    for (const auto& p : c.published) out << "    published: \"" << printable(p) << "\"\n";
    if (s == Severity::kOk) continue;
    out << "    expected:  " << printable(c.expected) << "\n";
    for (const auto& f : c.fixes) {
      out << "    fix:       " << indented(f.zone, kIndent) << "\n";
    }
    for (const auto& a : c.advice) out << "    advice:    " << printable(a) << "\n";
  }
  for (const auto& n : r.notes) out << "note: " << printable(n) << "\n";
  out << r.checks.size() << " records: " << counts[0] << " ok, " << counts[1] << " warning(s), "
      << counts[2] << " mismatch(es), " << counts[3] << " lookup error(s)\n";
}

void print_json(const Report& r, std::ostream& out) {
  nlohmann::json checks = nlohmann::json::array();
  nlohmann::json summary = {{"ok", 0}, {"warning", 0}, {"mismatch", 0}, {"error", 0}};
  for (const auto& c : r.checks) {
    Severity s = c.status();
    summary[std::string(severity_name(s))] = summary[std::string(severity_name(s))].get<int>() + 1;
    nlohmann::json j = {
        {"domain", c.domain},
        {"type", record_type_name(c.type)},
        {"name", c.name},
        {"status", severity_name(s)},
        {"published", json_list(c.published)},
        {"expected", c.expected},
    };
    if (c.type == RecordType::kDkim) j["selector"] = c.selector;
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : c.problems) {
      problems.push_back(
          {{"code", p.code}, {"severity", severity_name(p.severity)}, {"message", p.message}});
    }
    j["problems"] = problems;
    nlohmann::json fixes = nlohmann::json::array();
    for (const auto& f : c.fixes) {
      fixes.push_back({{"name", f.name}, {"type", f.type}, {"value", f.value}, {"zone", f.zone}});
    }
    j["fixes"] = fixes;
    j["advice"] = json_list(c.advice);
    j["notes"] = json_list(c.notes);
    checks.push_back(std::move(j));
  }
  nlohmann::json doc = {{"ok", exit_code(r) == 0},
                        {"summary", summary},
                        {"checks", checks},
                        {"notes", json_list(r.notes)}};
  // A zone may publish any octet: invalid UTF-8 becomes U+FFFD rather than an exception.
  out << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace mxguard::milter::dnscheck
