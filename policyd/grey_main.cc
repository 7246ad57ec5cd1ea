// mxguard-grey: the greylist admin tool (list, show, delete, whitelist, purge, stats,
// import-postgrey). It reads mxguard-policyd's config file, so it talks to the same Redis with
// the same key prefix and timings. Everything but option parsing lives in grey_admin.cc.
// Must never write a key layout the daemon does not read.
#include <iostream>

#include "common/daemon/daemon.h"
#include "common/log/log.h"
#include "policyd/grey_admin.h"

int main(int argc, char** argv) {
  using mxguard::policyd::GreyOptions;
  const mxguard::common::config::ProgramInfo info{
      "mxguard-grey", "greylist administration for mxguard-policyd (and postgrey migration)",
      "/etc/mxguard/policyd.conf", "COMMAND [ARGS...]"};
  GreyOptions opts;
  mxguard::common::config::Request req;
  if (int rc = mxguard::common::daemon::parse_options(info, opts, argc, argv, &req); rc >= 0) {
    if (rc == 0 && req.action == mxguard::common::config::Request::Action::kHelp) {
      std::cout << "\n" << mxguard::policyd::grey_usage();
    }
    return rc;
  }
  // Errors only: the tool reports an unreachable Redis itself, once, with its exit code; the
  // pool's own "is down" warning would say it twice.
  mxguard::common::log::init(info.name, mxguard::common::log::Target::kStderr,
                             mxguard::common::log::Level::kError);
  return mxguard::policyd::run_grey_command(opts, req.positional, std::cout, std::cerr);
}
