#!/usr/bin/env bash
# The fresh-machine check (issue 16): proves that README.md's two set-up commands work on a
# Debian bookworm that has nothing installed. Builds a minbase chroot with debootstrap (from
# the Debian mirror this machine's apt uses), puts a clean clone of main's HEAD into it
# (committed files only), and runs, as root inside it with a minimal environment, first
# `bash contrib/demo/run.sh` and then `bash tests/run.sh`. Both install what they need with
# tests/install-deps.sh; anything missing from it fails here. Needs root. The chroot shares
# this machine's network namespace; the demo and the tests talk to loopback only.
#
#   tests/fresh-machine.sh [--reuse] [--demo-only | --tests-only | --deps-only] [--root DIR]
#
#   --reuse       keep an existing, complete chroot (default: delete it and debootstrap anew);
#                 the clone in it is always made anew
#   --demo-only   run only `bash contrib/demo/run.sh`
#   --tests-only  run only `bash tests/run.sh`
#   --deps-only   no build: run `bash tests/install-deps.sh --demo` and then
#                 `bash tests/install-deps.sh`, and after each check that the tools the demo
#                 (resp. the tests and packaging/build-deb.sh) call are there, including
#                 dpkg-checkbuilddeps against packaging/debian/control
#   --root DIR    the chroot, a directory under build/ (default build/fresh-root)
#
# Each step's output goes to build/fresh-logs/NN-STEP.log; a table of steps, exit statuses and
# seconds closes the run, which exits non-zero if any step failed. MXGUARD_* variables set by
# the caller (MXGUARD_JOBS, MXGUARD_SKIP_FUZZ, ...) are passed into the chroot; nothing else
# is. Every mount is undone on exit (also on failure and Ctrl-C), and processes still running
# inside the chroot then are stopped by pid.

# Functions called through trap and run_fn look unreachable to shellcheck 0.9:
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=$repo/build/fresh-root
logs=$repo/build/fresh-logs
mode=all
reuse=0
suite=bookworm
clone_dir=/root/mxguard  # inside the chroot

usage() { sed -n '10,20s/^# \{0,1\}//p' "$0"; }
while (($#)); do
  case $1 in
    --reuse) reuse=1 ;;
    --demo-only) mode=demo ;;
    --tests-only) mode=tests ;;
    --deps-only) mode=deps ;;
    --root) [ $# -ge 2 ] || { usage >&2; exit 2; }; root=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fresh-machine: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

[ "$(id -u)" = 0 ] || { echo "fresh-machine: run as root (debootstrap, mount, chroot)" >&2; exit 1; }
# The chroot is deleted with rm -rf: only ever a directory of its own under build/.
mkdir -p "$repo/build"
root=$(realpath -m "$root")
case $root in
  "$repo"/build/?*) ;;
  *) echo "fresh-machine: --root must be a directory under $repo/build/" >&2; exit 2 ;;
esac
if [[ $root =~ [[:space:]] ]]; then
  echo "fresh-machine: no white space in the chroot's path, please" >&2; exit 2
fi

# --- steps: each one's output in a log file, its exit status and seconds in the summary ------
mkdir -p "$logs"
rm -f "$logs"/*.log
# The terminal, for cleanup: a signal can arrive while a step's output goes to its log.
exec 3>&1 4>&2
step_names=() step_rcs=() step_secs=()
step_pid=""      # the running step's process group (setsid), stopped on exit
current_step=""  # set while a step runs, for the summary of an interrupted run
current_start=0
run_start=$SECONDS

log_for() { printf '%s/%02d-%s.log' "$logs" $((${#step_names[@]} + 1)) "$1"; }
record() {  # record NAME RC SECONDS
  step_names+=("$1"); step_rcs+=("$2"); step_secs+=("$3")
}
show_failure() {  # show_failure NAME RC LOG
  echo "fresh-machine: $1 FAILED (exit $2); the end of ${3#"$repo"/}:"
  tail -n 40 "$3" | sed 's/^/  | /'
}

# bg_run COMMAND...: an external command in a session and process group of its own, so that
# an interrupted run can stop it and everything it started (cleanup), with the signal
# dispositions of a login (a background job would inherit SIGINT ignored); waited for in a
# way a signal to this script interrupts.
bg_run() {
  local rc=0
  setsid env --default-signal "$@" </dev/null 3>&- 4>&- &
  step_pid=$!
  wait "$step_pid" || rc=$?
  step_pid=""
  return "$rc"
}

# run_step NAME COMMAND...: an external command (bg_run), output to the step's log.
run_step() {
  local name=$1 log rc=0
  shift
  log=$(log_for "$name")
  echo "fresh-machine: $name (log: ${log#"$repo"/})"
  current_step=$name current_start=$SECONDS
  bg_run "$@" >"$log" 2>&1 || rc=$?
  current_step=""
  record "$name" "$rc" $((SECONDS - current_start))
  [ "$rc" = 0 ] || show_failure "$name" "$rc" "$log"
  return "$rc"
}

# run_fn NAME FUNCTION...: a function of this script, run in this shell (it may set variables,
# e.g. the list of mounts), output to the step's log. The function checks its own errors.
run_fn() {
  local name=$1 log rc=0
  shift
  log=$(log_for "$name")
  echo "fresh-machine: $name (log: ${log#"$repo"/})"
  current_step=$name current_start=$SECONDS
  "$@" </dev/null >"$log" 2>&1 || rc=$?
  current_step=""
  record "$name" "$rc" $((SECONDS - current_start))
  [ "$rc" = 0 ] || show_failure "$name" "$rc" "$log"
  return "$rc"
}

# --- mounts and processes inside the chroot ---------------------------------------------------
mounts_under_root() {  # mount points at or under $root, most recent first
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | tac
}

chroot_pids() {  # processes whose root directory is the chroot
  local d
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/root" 2>/dev/null)" = "$root" ] && echo "${d#/proc/}"
  done
  return 0
}

stop_chroot_processes() {
  local pids
  pids=$(chroot_pids)
  [ -n "$pids" ] || return 0
  echo "fresh-machine: stopping processes left in the chroot: $(paste -sd ' ' <<<"$pids")"
  # shellcheck disable=SC2086  # a list of pids
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 50); do
    [ -n "$(chroot_pids)" ] || return 0
    sleep 0.1
  done
  pids=$(chroot_pids)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  sleep 0.2
}

mounted=()  # what mount_all mounted, in order
mount_one() {  # mount_one PATH-IN-CHROOT MOUNT-ARGUMENTS...
  local target=$root$1
  shift
  mkdir -p "$target" || return 1
  mount "$@" "$target" || return 1
  mounted+=("$target")
}

# What the demo and the tests need of a running system. /dev is bound without its submounts,
# made private (so nothing mounted below it reaches the host's /dev), and gets the host's
# /dev/pts and a /dev/shm of its own; /run is a fresh tmpfs, as after a boot.
mount_all() {
  mount_one /proc -t proc proc &&
    mount_one /sys -t sysfs sysfs &&
    mount_one /dev --bind /dev &&
    mount --make-private "$root/dev" &&
    mount_one /dev/pts --bind /dev/pts &&
    mount_one /dev/shm -t tmpfs -o mode=1777,nosuid,nodev tmpfs &&
    mount_one /run -t tmpfs -o mode=0755,nosuid,nodev tmpfs &&
    mkdir -m 1777 "$root/run/lock" || return 1
  printf 'mounted %s\n' "${mounted[@]}"
}

# Undoes every mount under the chroot (ours, and any that something inside made), most recent
# first; a busy one after its processes were stopped is detached lazily, never left.
unmount_all() {
  local m pass left
  for pass in 1 2 3 4 5; do
    left=$(mounts_under_root)
    [ -n "$left" ] || break
    [ "$pass" = 1 ] || stop_chroot_processes
    while read -r m; do
      if [ "$pass" -lt 3 ]; then umount "$m" 2>/dev/null || true; else umount -l "$m" || true; fi
    done <<<"$left"
  done
  mounted=()
  left=$(mounts_under_root)
  if [ -n "$left" ]; then
    echo "fresh-machine: STILL MOUNTED under $root (unmount by hand): $left" >&2
    return 1
  fi
}

# Deletes the chroot, never through a mount: refuses while anything is mounted under it, and
# rm stays on the chroot's own file system.
remove_root() {
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-machine: something is mounted under $root; not deleting it" >&2
    return 1
  fi
  rm -rf --one-file-system "$root"
}

# --- summary and cleanup ---------------------------------------------------------------------
print_summary() {
  local i failed=0
  echo
  echo "fresh-machine: summary (logs in ${logs#"$repo"/}/)"
  printf '  %-20s %5s %8s\n' step exit seconds
  for i in "${!step_names[@]}"; do
    printf '  %-20s %5s %8s\n' "${step_names[i]}" "${step_rcs[i]}" "${step_secs[i]}"
    [ "${step_rcs[i]}" = 0 ] || failed=$((failed + 1))
  done
  printf '  %-20s %5s %8s\n' total "" $((SECONDS - run_start))
  echo "fresh-machine: $((${#step_names[@]} - failed)) steps passed, $failed failed"
}

interrupted=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  exec 1>&3 2>&4
  if [ -n "$step_pid" ]; then
    kill -TERM -- "-$step_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$step_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$step_pid" 2>/dev/null
    wait "$step_pid" 2>/dev/null
  fi
  if [ -n "$current_step" ]; then
    record "$current_step" "$rc" $((SECONDS - current_start))
  fi
  stop_chroot_processes
  if [ -n "$(mounts_under_root)" ]; then
    if unmount_all >"$logs/unmount.log" 2>&1; then
      echo "fresh-machine: unmounted everything under ${root#"$repo"/}"
    else
      cat "$logs/unmount.log" >&2; rc=1
    fi
  fi
  print_summary
  [ "$interrupted" = 0 ] || echo "fresh-machine: interrupted"
  for r in "${step_rcs[@]}"; do [ "$r" = 0 ] || { [ "$rc" != 0 ] || rc=1; }; done
  exit "$rc"
}
trap cleanup EXIT
trap 'interrupted=1; exit 130' INT
trap 'interrupted=1; exit 143' TERM

# --- this machine's Debian mirror (debian_entries, mirror, apt proxies, debian_apt_config) ----
# shellcheck source=tests/lib/debian-mirror.sh
. "$repo/tests/lib/debian-mirror.sh"

# --- steps --------------------------------------------------------------------------------------
host_tools() {
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
  command -v git >/dev/null || need+=(git)
  if ((${#need[@]})); then
    echo "installing on this machine: ${need[*]}"
    bg_run apt-get update -qq || return 1
    bg_run env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${need[@]}" || return 1
  fi
  echo "debootstrap $(dpkg-query -W -f='${Version}' debootstrap), $(git --version)"
}

bootstrap() {
  local include=()
  # apt needs the CA certificates to use an https mirror at all.
  [[ $mirror != https:* ]] || include=(--include=ca-certificates)
  remove_root || return 1
  echo "debootstrap --variant=minbase ${include[*]} $suite $root $mirror"
  bg_run env http_proxy="$apt_http_proxy" https_proxy="$apt_https_proxy" \
    debootstrap --variant=minbase "${include[@]}" "$suite" "$root" "$mirror" || return 1
  echo "$suite minbase from $mirror, $(date -u +%FT%TZ)" >"$root/.fresh-machine"
}

# The chroot's apt sources are this machine's (debian_apt_config); resolv.conf is this
# machine's (the chroot shares its network); /etc/hosts as every installed Debian has it.
configure() {
  debian_apt_config "$root" || return 1
  rm -f "$root/etc/resolv.conf"
  install -m 0644 /etc/resolv.conf "$root/etc/resolv.conf" || return 1
  if ! grep -qw localhost "$root/etc/hosts" 2>/dev/null; then
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >>"$root/etc/hosts"
  fi
  echo "sources.list:"; sed 's/^/  /' "$root/etc/apt/sources.list"
  for f in "$root/etc/apt/apt.conf.d/00fresh-machine" "$root/etc/resolv.conf" "$root/etc/hosts"; do
    [ -e "$f" ] && { echo "${f#"$root"}:"; sed 's/^/  /' "$f"; }
  done
  mount_all
}

# A clean clone: main's HEAD as committed, nothing from this work tree's uncommitted state.
clone() {
  rm -rf --one-file-system "$root$clone_dir" || return 1
  git clone --quiet --branch main --single-branch "file://$repo" "$root$clone_dir" || return 1
  git -C "$root$clone_dir" log -1 --format='cloned main at %H (%cd) %s'
}

# in_chroot NAME SCRIPT [ARG...]: bash -c SCRIPT in the clone, as root, minimal environment.
chroot_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
  LANG=C.UTF-8 TERM=dumb)
while IFS= read -r v; do
  [[ $v != MXGUARD_* ]] || chroot_env+=("$v=${!v}")
done < <(compgen -e)
in_chroot() {
  local name=$1 script=$2
  shift 2
  run_step "$name" env -i "${chroot_env[@]}" "$(command -v chroot)" "$root" \
    /bin/bash -c "cd $clone_dir && $script" bash "$@"
}

# The tool check (--deps-only), run inside the chroot: every command named must be on PATH,
# every Python module importable (with /usr/bin/python3, as the fixtures run it); the C and
# C++ compilers must build and link a program; with --tests, packaging/build-deb.sh's
# build dependencies must be met (dpkg-checkbuilddeps in packaging/, where debian/control is
# the package's control file, as debian/ is in build-deb.sh's copy of the tree) and clang-14
# must link a libFuzzer target (tests/run.sh's fuzz smoke run).
# shellcheck disable=SC2016  # expanded inside the chroot
tool_check='
set -u
failed=0
ok() { printf "  ok       %s\n" "$*"; }
bad() { printf "  MISSING  %s\n" "$*"; failed=1; }
scope=$1; shift
for t in "$@"; do
  case $t in
    py:*) if /usr/bin/python3 -c "import ${t#py:}" 2>/dev/null; then ok "python3 module ${t#py:}"
          else bad "python3 module ${t#py:} ($(/usr/bin/python3 -c "import ${t#py:}" 2>&1 | tail -n 1))"; fi ;;
    *) if p=$(command -v "$t"); then ok "$t ($p)"; else bad "$t"; fi ;;
  esac
done
work=$(mktemp -d)
printf "int main(void) { return 0; }\n" >"$work/t.c"
printf "#include <string>\nint main() { return std::string(\"x\").size() - 1; }\n" >"$work/t.cc"
if cc "$work/t.c" -o "$work/t" 2>&1 && "$work/t"; then ok "cc builds and links a C program"
else bad "cc cannot build a C program"; fi
if c++ "$work/t.cc" -o "$work/t" 2>&1 && "$work/t"; then ok "c++ builds and links a C++ program"
else bad "c++ cannot build a C++ program"; fi
if [ "$scope" = tests ]; then
  if (cd packaging && dpkg-checkbuilddeps 2>&1); then
    ok "dpkg-checkbuilddeps (packaging/debian/control, build-essential included): all met"
  else bad "dpkg-checkbuilddeps: unmet build dependencies (above)"; fi
  printf "#include <cstdint>\n#include <cstddef>\nextern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n" >"$work/f.cc"
  if clang++-14 -fsanitize=fuzzer,address "$work/f.cc" -o "$work/f" 2>&1 && "$work/f" -runs=1 >/dev/null 2>&1; then
    ok "clang++-14 links and runs a libFuzzer target"
  else bad "clang++-14 cannot build a libFuzzer target"; fi
fi
rm -rf "$work"
exit "$failed"
'
build_tools=(cc c++ gcc g++ make cmake ninja pkg-config)
# What the demo runs (contrib/demo, tests/fixtures): Redis, Postfix and swaks, clamd, the DNS
# server and DKIM check in Python, openssl for keys.
demo_tools=("${build_tools[@]}" redis-server postfix postconf postqueue sendmail swaks clamd
  openssl ip ps py:dnslib py:dkim py:yaml)
# What tests/run.sh and packaging/test.sh run besides: the package build and lint, the test
# peers, the format check and the fuzz build.
test_tools=("${demo_tools[@]}" dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog
  dpkg-architecture dh fakeroot lintian ccache clang-format clang-tidy clang-14 clang++-14
  redis-cli miltertest postgrey dovecot xmllint systemd-analyze man setpriv debootstrap
  systemd-nspawn script timeout promtool ip py:spf py:dns.resolver
  py:spf_engine)

# --- the run ---------------------------------------------------------------------------------
echo "fresh-machine: $suite minbase in ${root#"$repo"/} from $mirror (mode: $mode)"
run_fn host-tools host_tools
if [ "$reuse" = 1 ] && [ -e "$root/.fresh-machine" ] && [ -z "$(mounts_under_root)" ]; then
  echo "fresh-machine: reusing ${root#"$repo"/} ($(cat "$root/.fresh-machine"))"
  record "debootstrap (reused)" 0 0
else
  [ "$reuse" = 0 ] || echo "fresh-machine: no complete chroot to reuse; making one"
  run_fn debootstrap bootstrap
fi
run_fn prepare configure
run_fn clone clone

rc=0
case $mode in
  all)
    in_chroot demo 'bash contrib/demo/run.sh' || rc=1
    in_chroot tests 'bash tests/run.sh' || rc=1 ;;
  demo) in_chroot demo 'bash contrib/demo/run.sh' || rc=1 ;;
  tests) in_chroot tests 'bash tests/run.sh' || rc=1 ;;
  deps)
    in_chroot deps-demo 'bash tests/install-deps.sh --demo' || rc=1
    in_chroot tools-demo "$tool_check" demo "${demo_tools[@]}" || rc=1
    in_chroot deps-tests 'bash tests/install-deps.sh' || rc=1
    in_chroot tools-tests "$tool_check" tests "${test_tools[@]}" || rc=1 ;;
esac
exit "$rc"
