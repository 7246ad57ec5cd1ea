// The health of a daemon for load balancers and container health checks: named checks ("serving",
// "redis", "clamd"), each saying ok or why not, served as GET /healthz on --metrics-listen
// (http_server.h). Thread-safe: checks are added while the endpoint may already answer. Must
// never hold its lock while a check runs (a check may wait on its dependency, bounded by that
// dependency's own timeout), and never let a check's exception escape as anything but a failure.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mxguard::common::metrics {

class Health {
 public:
  // One check's answer: ok, or the reason it is not (one short line).
  struct Result {
    bool ok = true;
    std::string reason;

    static Result good() { return {}; }
    static Result bad(std::string why) { return {false, std::move(why)}; }
  };
  using Check = std::function<Result()>;

  // Adds a check under a name of its own; a name already taken is a programming error
  // (std::logic_error), so two filters cannot silently shadow each other's check.
  void add(const std::string& name, Check check);

  // Every check, in the order added. ok when all pass (or there are none); `text` is "ok\n",
  // or one "NAME: REASON\n" line per failing check.
  struct Report {
    bool ok = true;
    std::string text;
  };
  Report evaluate() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, Check>> checks_;
};

}  // namespace mxguard::common::metrics
