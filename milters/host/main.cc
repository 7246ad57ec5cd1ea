// mxguard-milter: the dkim, dmarc and av filters behind one milter socket (one connection per
// SMTP session). Everything else lives in the host service and the common skeleton.
#include "common/daemon/daemon.h"
#include "milters/host/host.h"

int main(int argc, char** argv) {
  using mxguard::milter::host::Options;
  return mxguard::common::daemon::run<Options>(
      {"mxguard-milter", "the mxguard filters (dkim, dmarc, av) as one milter",
       "/etc/mxguard/milter.conf", ""},
      argc, argv,
      [](const Options& o) { return std::make_unique<mxguard::milter::host::HostService>(o); });
}
