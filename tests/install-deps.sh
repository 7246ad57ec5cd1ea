#!/usr/bin/env bash
# Installs every build and test dependency of mxguard on Debian bookworm (idempotent, quiet).
# Run as root. Skips apt entirely when everything is already installed.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config clang-14 libclang-rt-14-dev clang-format clang-tidy
  libmilter-dev libssl-dev libopendkim-dev libhiredis-dev libunbound-dev libpsl-dev publicsuffix zlib1g-dev
  libboost-program-options-dev libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  # test peers
  redis-server postfix swaks python3-dnslib python3-dkim python3-yaml python3-spf postfix-policyd-spf-python miltertest
  postgrey db5.3-util procps iproute2 libxml2-utils
  dovecot-core dovecot-imapd  # mxguard-authpolicy end to end (tests/fixtures/dovecot_server.h), SASL for Postfix
  openssl  # key generation in the DKIM tests (openssl genpkey)
  clamav-daemon clamav-testfiles clamav-milter  # mxguard-av: private clamd and test files; clamav-milter for tests/bench/av_compare.sh
  # package build and test (packaging/test.sh)
  debhelper dpkg-dev fakeroot lintian ccache adduser man-db systemd util-linux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks debconf questions on install; answer "No configuration" so the system
  # Postfix stays stopped and untouched (tests run private instances).
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts redis-server and postfix as services on install; the tests run their own
# private instances and never use the system ones, so leave the system ones as they are.
echo "install-deps: all dependencies present"
