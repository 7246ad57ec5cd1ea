#!/bin/bash
# The README.Debian walk (issue 16): boots a Debian bookworm container under systemd-nspawn,
# with systemd as PID 1, a stock "Internet Site" Postfix and redis-server, and no network but
# its own loopback, and has packaging/walk/walk.sh do there what README.Debian tells an admin:
# dpkg -i the .deb; enable mxguard-policyd, mxguard-setup postfix, send mail (local, SPF
# fail, greylisted and retried); make a DKIM key, enable mxguard-dkim and mxguard-dmarc,
# mxguard-setup postfix again, send mail (signed and checked by python3-dkim; signed from
# outside and verified; DMARC reject); mxguard-setup postfix --remove, send mail; apt-get purge
# mxguard, send mail. Each step's command and output, and PASS/FAIL lines, are printed.
# The units run under a real systemd: Type=notify, the watchdog and the sandbox included.
#
#   packaging/test-walk.sh [--reuse] [DEB]
#
#   DEB      the package (default: the newest build/deb/mxguard_*_amd64.deb)
#   --reuse  keep build/walk-root if it was made for the same package list (default: anew)
#
# The container's root is build/walk-root: debootstrap --variant=minbase from this machine's
# Debian mirror, then postfix (Internet Site, mx.example.org), redis-server, swaks,
# python3-dkim, python3-dnslib and mxguard's dependencies, with apt in a chroot; the .deb itself
# is installed by the walk. The boot uses --volatile=overlay: nothing the walk does is kept.
# Needs root, debootstrap and systemd-nspawn (package systemd-container). Where this machine
# cannot run a container at all (nspawn cannot start /bin/true on this machine's own root, read
# only: e.g. inside a chroot without cgroups, as tests/fresh-machine.sh runs the tests), the
# walk is reported as NOT RUN before anything is built and the script exits 0, unless
# MXGUARD_REQUIRE_WALK=1; a walk that ran and failed always exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=$repo/build/walk-root
suite=bookworm
reuse=0 deb=""
while (($#)); do
  case $1 in
    --reuse) reuse=1 ;;
    -h|--help) sed -n '12,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "walk: unknown option $1" >&2; exit 2 ;;
    *) deb=$1 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "walk: needs root (debootstrap, systemd-nspawn)" >&2; exit 1; }
if [ -z "$deb" ]; then
  deb=$(ls -t "$repo"/build/deb/mxguard_*_amd64.deb 2>/dev/null | head -n 1 || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || { echo "walk: no .deb (build one: packaging/build-deb.sh)" >&2; exit 1; }
deb=$(realpath "$deb")

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
  echo "walk: installing on this machine: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# shellcheck source=tests/lib/debian-mirror.sh
. "$repo/tests/lib/debian-mirror.sh"

tmp=$(mktemp -d /tmp/mxguard-walk.XXXXXX)
chmod 0755 "$tmp"
cleanup() {
  local m
  # Mounts of the chroot phase, most recent first (the container's are nspawn's own).
  for m in $(awk -v r="$root" 'index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | tac); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- can this machine run a container? (before spending minutes on the root) ------------------
# This machine's own root, read-only under a tmpfs (--volatile=yes): nothing is written.
if ! timeout 60 systemd-nspawn -D / --volatile=yes --register=no --keep-unit --private-network \
    --console=pipe -q /bin/true </dev/null >"$tmp/probe.log" 2>&1; then
  echo "walk: NOT RUN: this machine cannot run a container (systemd-nspawn /bin/true failed):"
  sed 's/^/  | /' "$tmp/probe.log"
  [ "${MXGUARD_REQUIRE_WALK:-0}" = 1 ] && exit 1
  exit 0
fi

# --- the container's root: a stock Debian with Postfix "Internet Site" -----------------------
deps=$(dpkg-deb -f "$deb" Depends)
export DEPS="$deps"  # read by the chroot's bash below
packages=(systemd systemd-sysv dbus iproute2 procps postfix redis-server swaks python3-dkim
  python3-dnspython python3-dnslib ca-certificates)
stamp="$suite minbase from $mirror; ${packages[*]}; $deps"
if [ "$reuse" = 1 ] && [ -f "$root/.walk-root" ] && [ "$(cat "$root/.walk-root")" = "$stamp" ]; then
  echo "walk: reusing ${root#"$repo"/}"
else
  if awk -v r="$root" '$5 == r || index($5, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    echo "walk: something is mounted under $root; not deleting it" >&2; exit 1
  fi
  rm -rf --one-file-system "$root"
  echo "walk: debootstrap --variant=minbase $suite ${root#"$repo"/} $mirror"
  env http_proxy="$apt_http_proxy" https_proxy="$apt_https_proxy" \
    debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -n 30 "$tmp/debootstrap.log"; exit 1; }
  debian_apt_config "$root"
  install -m 0644 /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev" && mount --make-private "$root/dev"
  # No service may start in the chroot (policy-rc.d 101); Postfix's debconf answers are those
  # of an "Internet Site" named mx.example.org.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  echo mx.example.org >"$root/etc/hostname"
  chroot "$root" debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select Internet Site
postfix postfix/mailname string mx.example.org
EOF
  echo "walk: apt-get install ${packages[*]} and mxguard's dependencies in the chroot"
  if ! chroot "$root" env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" &&
               apt-get satisfy -y -qq --no-install-recommends "$DEPS"' bash "${packages[@]}" \
      >"$tmp/apt.log" 2>&1 </dev/null; then
    tail -n 30 "$tmp/apt.log"; exit 1
  fi
  rm -f "$root/usr/sbin/policy-rc.d"
  umount "$root/dev" "$root/proc"
  # The recipient of every test message; the resolver is the walk's DNS server on loopback.
  chroot "$root" useradd --create-home walk
  echo "nameserver 127.0.0.1" >"$root/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tmx.example.org mx\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$root/etc/hosts"
  install -m 0644 "$repo/packaging/walk/walk.service" "$root/etc/systemd/system/walk.service"
  chroot "$root" systemctl enable walk.service >/dev/null 2>&1
  # Nothing the walk needs from a console login.
  chroot "$root" systemctl mask console-getty.service getty@tty1.service >/dev/null 2>&1 || true
  echo "$stamp" >"$root/.walk-root"
fi

nspawn=(systemd-nspawn -D "$root" --register=no --keep-unit --volatile=overlay --private-network
  --resolv-conf=off --timezone=off)

# --- the walk --------------------------------------------------------------------------------
mkdir -p "$tmp/walk" "$tmp/out"
install -m 0644 packaging/walk/walk.sh tests/fixtures/dns_server.py tests/fixtures/dkim_tool.py "$deb" "$tmp/walk/"
echo "walk: booting ${root#"$repo"/} (systemd-nspawn --boot --private-network), the walk runs as walk.service"
start=$SECONDS
# systemd in the container writes its console only to a terminal: script(1) gives it one.
rc=0
timeout 1200 script -qfec "$(printf '%q ' "${nspawn[@]}" --boot --bind-ro="$tmp/walk:/walk" --bind="$tmp/out:/out")" \
  "$tmp/console.log" </dev/null >/dev/null 2>&1 || rc=$?
echo "walk: the container ran $((SECONDS - start)) s (exit $rc)"
if [ -f "$tmp/out/walk.log" ]; then
  cat "$tmp/out/walk.log"
else
  echo "walk: no walk.log; the container's console:"; tr -d '\r' <"$tmp/console.log" | tail -n 60
fi
result=$(cat "$tmp/out/result" 2>/dev/null || echo "no result")
echo "walk: result: $result"
[ "$result" = PASS ]
