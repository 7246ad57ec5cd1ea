// mxguard-dmarc: DMARC evaluation and enforcement milter that records aggregate report data in
// Redis. Everything else lives in the service and the common skeleton.
#include "common/daemon/daemon.h"
#include "milters/dmarc/dmarc_milter.h"

int main(int argc, char** argv) {
  using mxguard::milter::dmarc::Options;
  return mxguard::common::daemon::run<Options>(
      {"mxguard-dmarc", "DMARC evaluation and enforcement milter", "/etc/mxguard/dmarc.conf", ""},
      argc, argv,
      [](const Options& o) { return std::make_unique<mxguard::milter::dmarc::DmarcService>(o); });
}
