// Fuzzes mxguard-policyd's whole request path: bytes → policy codec → decision. Redis is
// pointed at a closed port, so the greylist store fails and the configured fail-open path runs
// (no Redis is needed to fuzz). Every reply must be one well-formed action line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/log/log.h"
#include "common/policy/codec.h"
#include "policyd/policy_service.h"

namespace {

mxguard::policyd::PolicyService& service() {
  static mxguard::policyd::PolicyService* svc = [] {
    mxguard::common::log::init("fuzz", mxguard::common::log::Target::kStderr,
                               mxguard::common::log::Level::kFatal);
    mxguard::policyd::Options o;
    o.daemon.listen = "inet:127.0.0.1:1";
    o.redis.url = "redis://127.0.0.1:1/0";  // nothing listens there
    o.redis.connect_timeout = std::chrono::milliseconds(50);
    o.greylist.whitelist_clients.clear();
    o.greylist.whitelist_recipients.clear();
    o.greylist.hostname = "fuzz";
    return new mxguard::policyd::PolicyService(o, [] { return std::int64_t{1700000000}; });
  }();
  return *svc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  mxguard::common::policy::Parser parser;
  while (!input.empty()) {
    std::size_t used = 0;
    auto status = parser.feed(input, used);
    input.remove_prefix(used);
    if (status != mxguard::common::policy::Parser::Status::kComplete) break;
    auto req = parser.take();
    // Make most inputs reach the greylist check.
    req.set("protocol_state", "RCPT");
    std::string action = service().handle(req);
    if (action.empty() || action.find('\n') != std::string::npos) std::abort();
  }
  return 0;
}
