#!/usr/bin/env bash
# Installs every build and test dependency of mxguard on Debian bookworm (idempotent, quiet).
# Run as root. Skips apt entirely when everything is already installed. With --bench, the
# benchmarks' comparison peers (tests/bench/: the tools mxguard replaces). With --demo, only what
# contrib/demo/run.sh needs (build chain, libraries, Postfix, Redis, clamd, swaks, the DNS and
# DKIM Python modules). Packages are installed without starting their system services (a
# temporary policy-rc.d): the tests and the demo run private instances, and a freshly installed
# Dovecot, Redis or clamd listening on the machine is not something they should leave behind.
set -euo pipefail

demo_packages=(
  build-essential cmake ninja-build g++ pkg-config
  libmilter-dev libssl-dev libopendkim-dev libhiredis-dev libunbound-dev libpsl-dev libidn2-dev publicsuffix zlib1g-dev
  libboost-program-options-dev libboost-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  redis-server postfix swaks python3-dnslib python3-dkim python3-yaml clamav-daemon procps iproute2 openssl
)

packages=(
  # build
  build-essential cmake ninja-build g++ pkg-config clang-14 libclang-rt-14-dev llvm-14 clang-format clang-tidy
  libmilter-dev libssl-dev libopendkim-dev libhiredis-dev libunbound-dev libpsl-dev libidn2-dev publicsuffix zlib1g-dev
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
  # the README.Debian walk in a booted container (packaging/test-walk.sh)
  debootstrap debian-archive-keyring systemd-container
  # promtool, so integration.contrib_metric_names checks the alert rules (the server is never
  # started: see the policy-rc.d below)
  prometheus
)

bench_packages=(
  opendkim opendmarc clamav-daemon clamav-milter postgrey postfix-policyd-spf-python rspamd
  redis-server postfix miltertest socat jq linux-perf
)

if [ "${1:-}" = --demo ]; then
  packages=("${demo_packages[@]}")
elif [ "${1:-}" = --bench ]; then
  packages=("${bench_packages[@]}")
fi

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
  # Keep the packages' maintainer scripts from starting their services (invoke-rc.d and
  # deb-systemd-invoke ask policy-rc.d; 101 = "not allowed"). An admin's own policy-rc.d is
  # left alone.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || exit "$rc"
fi

# Packages installed earlier (or by hand) may have their services running; the tests and the
# demo never use them and leave them as they are.
echo "install-deps: all dependencies present"
