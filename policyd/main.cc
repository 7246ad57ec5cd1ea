// mxguard-policyd: Postfix policy-delegation server (check_policy_service) for greylisting on
// a shared Redis. Everything else lives in the service and the common skeleton.
#include "common/daemon/daemon.h"
#include "policyd/policy_service.h"

int main(int argc, char** argv) {
  using mxguard::policyd::Options;
  return mxguard::common::daemon::run<Options>(
      {"mxguard-policyd", "Postfix policy server: greylisting on a shared Redis",
       "/etc/mxguard/policyd.conf", ""},
      argc, argv,
      [](const Options& o) { return std::make_unique<mxguard::policyd::PolicyService>(o); });
}
