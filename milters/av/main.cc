// mxguard-av: antivirus bridge milter streaming mail to clamd (INSTREAM). Everything else
// lives in the service and the common skeleton.
#include "common/daemon/daemon.h"
#include "milters/av/av_milter.h"

int main(int argc, char** argv) {
  using mxguard::milter::av::Options;
  return mxguard::common::daemon::run<Options>(
      {"mxguard-av", "antivirus milter: streams mail to clamd and acts on its verdict",
       "/etc/mxguard/av.conf", ""},
      argc, argv,
      [](const Options& o) { return std::make_unique<mxguard::milter::av::AvService>(o); });
}
