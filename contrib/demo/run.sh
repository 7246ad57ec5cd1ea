#!/usr/bin/env bash
# The README's first command: on a fresh Debian bookworm, as root, installs what mxguard
# needs, builds it, and runs the demo stack (DNS, Redis, clamd, mxguard-policyd, -dkim, -dmarc,
# -av and a private Postfix on 127.0.0.1:2525) on loopback only. Pass --keep to leave the stack running,
# --combined to run the three milters as one mxguard-milter.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "run.sh: run as root (it installs packages and starts a private Postfix)" >&2
  exit 1
fi
bash tests/install-deps.sh --demo
build=${MXGUARD_BUILD_DIR:-build/ci}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${MXGUARD_JOBS:-2}" --target mxguard-demo mxguard-policyd mxguard-dkim mxguard-keygen mxguard-dmarc mxguard-av mxguard-milter
exec "$build/contrib/demo/mxguard-demo" "$@"
