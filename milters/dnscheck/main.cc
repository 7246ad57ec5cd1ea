// mxguard-dnscheck: are the SPF, DKIM, DMARC and MX records of our signing domains what we
// expect? Everything but option parsing lives in dnscheck.cc.
#include <iostream>

#include "common/daemon/daemon.h"
#include "common/log/log.h"
#include "milters/dnscheck/dnscheck.h"

int main(int argc, char** argv) {
  namespace dnscheck = mxguard::milter::dnscheck;
  const mxguard::common::config::ProgramInfo info{
      "mxguard-dnscheck", "checks the SPF, DKIM, DMARC and MX records of our signing domains", "",
      "[DOMAIN...]"};
  dnscheck::Options opts;
  mxguard::common::config::Request req;
  if (int rc = mxguard::common::daemon::parse_options(info, opts, argc, argv, &req); rc >= 0) {
    // --help, --version, --dump-config, --check-config: 0; a bad option: 2, as for any checker.
    return rc == 0 ? dnscheck::kExitOk : dnscheck::kExitUsage;
  }
  mxguard::common::log::init(info.name, mxguard::common::log::Target::kStderr,
                             mxguard::common::log::Level::kError);
  return dnscheck::run(opts, req.positional, std::cout, std::cerr);
}
