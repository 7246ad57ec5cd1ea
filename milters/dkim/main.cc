// mxguard-dkim: DKIM signing (our domains) and verification (everyone else) milter on
// libopendkim. Everything else lives in the service and the common skeleton.
#include "common/daemon/daemon.h"
#include "milters/dkim/dkim_milter.h"

int main(int argc, char** argv) {
  using mxguard::milter::dkim::Options;
  return mxguard::common::daemon::run<Options>(
      {"mxguard-dkim", "DKIM signing and verifying milter (RSA and Ed25519)",
       "/etc/mxguard/dkim.conf", ""},
      argc, argv,
      [](const Options& o) { return std::make_unique<mxguard::milter::dkim::DkimService>(o); });
}
