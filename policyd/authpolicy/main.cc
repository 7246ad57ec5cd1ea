// mxguard-authpolicy: Dovecot auth-policy server (brute-force defence on a shared Redis), and
// `mxguard-authpolicy ban …` to see and change its blocks. Everything else lives in the service
// and the common skeleton.
#include <cstring>

#include "common/daemon/daemon.h"
#include "policyd/authpolicy/auth_service.h"
#include "policyd/authpolicy/ban_admin.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "ban") == 0) {
    return mxguard::policyd::authpolicy::ban_main(argc - 1, argv + 1);
  }
  using mxguard::policyd::authpolicy::Options;
  return mxguard::common::daemon::run<Options>(
      {"mxguard-authpolicy", "Dovecot auth policy server: brute-force defence on a shared Redis",
       "/etc/mxguard/authpolicy.conf", ""},
      argc, argv, [](const Options& o) {
        return std::make_unique<mxguard::policyd::authpolicy::AuthPolicyService>(o);
      });
}
