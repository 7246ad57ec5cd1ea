// Implementation of the health registry (see health.h).
#include "common/metrics/health.h"

#include <stdexcept>

namespace mxguard::common::metrics {
namespace {

// A reason goes on one line of the answer: no line breaks from an error message.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s.empty() ? "failed" : s;
}

}  // namespace

void Health::add(const std::string& name, Check check) {
  std::lock_guard lock(mutex_);
  for (const auto& [n, c] : checks_) {
    if (n == name) throw std::logic_error("health check " + name + " added twice");
  }
  checks_.emplace_back(name, std::move(check));
}

Health::Report Health::evaluate() const {
  std::vector<std::pair<std::string, Check>> checks;
  {
    std::lock_guard lock(mutex_);
    checks = checks_;
  }
  Report report;
  for (const auto& [name, check] : checks) {
    Result r;
    try {
      r = check();
    } catch (const std::exception& ex) {
      r = Result::bad(ex.what());
    }
    if (!r.ok) {
      report.ok = false;
      report.text += name + ": " + one_line(r.reason) + "\n";
    }
  }
  if (report.ok) report.text = "ok\n";
  return report;
}

}  // namespace mxguard::common::metrics
