// mxguard-keygen: DKIM key pairs and their DNS records (generate), and the check that a
// published record matches a private key (test). Everything but option parsing lives in
// keygen.cc.
#include <iostream>

#include "common/daemon/daemon.h"
#include "common/log/log.h"
#include "milters/dkim/keygen.h"

int main(int argc, char** argv) {
  using mxguard::milter::dkim::KeygenOptions;
  const mxguard::common::config::ProgramInfo info{
      "mxguard-keygen", "DKIM keys (RSA, Ed25519) and the DNS records to publish", "",
      "[generate|test]"};
  KeygenOptions opts;
  mxguard::common::config::Request req;
  if (int rc = mxguard::common::daemon::parse_options(info, opts, argc, argv, &req); rc >= 0) {
    return rc;
  }
  mxguard::common::log::init(info.name, mxguard::common::log::Target::kStderr,
                             mxguard::common::log::Level::kError);
  return mxguard::milter::dkim::run_keygen(opts, req.positional, std::cout, std::cerr);
}
