// Fuzzes mxguard-authpolicy's request path after HTTP (Beast owns the request line and
// headers): query command + JSON body → AuthRequest → decision → JSON answer. Redis is pointed
// at a closed port, so every decision that gets that far takes the fail-open path, after the
// subject keys (addresses, networks, logins) have been built. The first byte picks the command.
// Every answer must be HTTP 200 with {"status":int,"msg":string} or 400 with an error object.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/log/log.h"
#include "policyd/authpolicy/auth_service.h"

namespace {

mxguard::policyd::authpolicy::AuthPolicyService& service() {
  static mxguard::policyd::authpolicy::AuthPolicyService* svc = [] {
    mxguard::common::log::init("fuzz", mxguard::common::log::Target::kStderr,
                               mxguard::common::log::Level::kFatal);
    mxguard::policyd::authpolicy::Options o;
    o.daemon.listen = "inet:127.0.0.1:1";
    o.redis.url = "redis://127.0.0.1:1/0";  // nothing listens there
    o.redis.connect_timeout = std::chrono::milliseconds(50);
    o.allow_networks = {"10.0.0.0/8"};
    o.login_limits = {"5/1m"};
    o.api_header = "X-API-Key: fuzz";
    return new mxguard::policyd::authpolicy::AuthPolicyService(
        o, [] { return std::int64_t{1700000000000}; });
  }();
  return *svc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view command = data[0] % 3 == 0 ? "allow" : data[0] % 3 == 1 ? "report" : "x";
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto answer = service().handle(command, body);
  auto j = nlohmann::json::parse(answer.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) std::abort();
  if (answer.status == 200) {
    if (!j.contains("status") || !j["status"].is_number_integer() || !j.contains("msg") ||
        !j["msg"].is_string()) {
      std::abort();
    }
  } else if (answer.status != 400 || !j.contains("error")) {
    std::abort();
  }
  return 0;
}
