#!/usr/bin/env bash
# The test command (README.md, .ci/run): installs dependencies on Debian bookworm, builds,
# runs every unit and integration test with ctest, builds and tests the Debian package
# (packaging/test.sh) and walks README.Debian in a booted container (packaging/test-walk.sh),
# then builds the fuzz targets with clang-14 and runs each for a short
# smoke period, then runs the unit and in-process integration tests under ASan+UBSan and the
# threaded ones under TSan. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${MXGUARD_BUILD_DIR:-$root/build/ci}
fuzz_build=${MXGUARD_FUZZ_BUILD_DIR:-$root/build/fuzz}
jobs=${MXGUARD_JOBS:-2}
fuzz_seconds=${MXGUARD_FUZZ_SECONDS:-20}

if [ "$(id -u)" = 0 ]; then
  bash tests/install-deps.sh
else
  echo "run.sh: not root, assuming dependencies are installed"
fi

start=$(date +%s)

# House style (STYLE.md): clang-format is checked, a difference fails the run (after the tests,
# so one run shows everything). `git ls-files` on a checkout, every source file otherwise.
format_rc=0
mkdir -p "$root/build"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t sources < <(git -C "$root" ls-files '*.cc' '*.h')
else
  mapfile -t sources < <(find common milters policyd tests contrib \( -name "*.cc" -o -name "*.h" \))
fi
if ! clang-format --dry-run -Werror "${sources[@]}" 2>"$root/build/clang-format.log"; then
  echo "run.sh: clang-format differences (run: clang-format -i FILE):"
  grep -E '^[^ ].*: (error|warning):' "$root/build/clang-format.log" | cut -d: -f1 | sort -u | sed 's/^/  /'
  format_rc=1
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs"

set +e
ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 300 2>&1 | tee "$build/ctest.log"
ctest_rc=${PIPESTATUS[0]}
set -e

# The .deb: build, lintian, dpkg -i on this machine, run, purge (packaging/test.sh), then the
# README.Debian walk (root only).
package_rc=0
if [ "${MXGUARD_SKIP_PACKAGE:-0}" = 1 ]; then
  echo "run.sh: package test skipped (MXGUARD_SKIP_PACKAGE=1)"
elif [ "$(id -u)" != 0 ]; then
  echo "run.sh: package test skipped (needs root for dpkg -i)"
else
  MXGUARD_JOBS=$jobs bash packaging/test.sh || package_rc=$?
  # README.Debian, step by step, on a stock Debian booted under systemd (packaging/test-walk.sh).
  if [ "$package_rc" = 0 ]; then
    deb=$(ls -t "${MXGUARD_DEB_DIR:-$root/build/deb}"/mxguard_*_amd64.deb | head -n 1)
    bash packaging/test-walk.sh "$deb" || package_rc=$?
  fi
fi

fuzz_rc=0
if [ "${MXGUARD_SKIP_FUZZ:-0}" != 1 ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$fuzz_build" -G Ninja -DMXGUARD_FUZZ=ON \
    -DMXGUARD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$fuzz_build" -j"$jobs" --target mxguard_fuzz_targets
  for target in "$fuzz_build"/tests/fuzz/fuzz_*; do
    [ -x "$target" ] || continue
    name=$(basename "$target")
    corpus="$root/tests/fuzz/corpus/${name#fuzz_}"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    echo "fuzz: $name for ${fuzz_seconds}s"
    if ! "$target" -max_total_time="$fuzz_seconds" -max_len=65536 -timeout=10 \
        -print_final_stats=0 "$work" >"$work.log" 2>&1; then
      echo "fuzz: $name FAILED"; tail -n 40 "$work.log"; fuzz_rc=1
    else
      grep -E "^Done|#[0-9]+.*DONE" "$work.log" | tail -n 1 || true
    fi
    rm -rf "$work" "$work.log"
  done
fi

# Sanitizers (issue 15): any report fails the run.
# - ASan + UBSan: the fuzz build above is already compiled with -fsanitize=address,undefined,
#   so the unit tests and the integration tests that run our code in-process (SPF evaluator,
#   resolver, milter wrapper, Redis pool and scripts, the DKIM, DMARC and AV milters, DMARC
#   reports, policyd's greylist/SPF/rate-limit services) are built and run there. Left out:
#   the tests that mostly drive other programs (Postfix, Dovecot, the daemons as separate
#   binaries, the pyspf/postgrey differentials), which would only sanitize the test harness.
# - TSan: the threaded parts — the policy and metrics servers, the resolver's thread, the
#   milter engines (libmilter's threads and our own pool), the Redis pool, authpolicy's server — in a gcc build
#   of their own.
# Each test binary runs directly (not through ctest), so a report shows with its test's output.
san_rc=0
run_sanitized() {  # run_sanitized BUILD_DIR LOG TARGET...
  local dir=$1 log=$2 t
  shift 2
  : >"$log"
  for t in "$@"; do
    if ! (cd "$dir" && timeout 600 "tests/$t" --gtest_brief=1) >>"$log" 2>&1; then
      echo "sanitize: $t FAILED ($(basename "$dir"))"; san_rc=1
    fi
  done
  grep -E "^(==[0-9]+==ERROR|WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined|Thread)Sanitizer)|runtime error:" \
    "$log" | sort | uniq -c | head -n 20 || true
  if grep -qE "==[0-9]+==ERROR|WARNING: ThreadSanitizer|runtime error:" "$log"; then san_rc=1; fi
}
if [ "${MXGUARD_SKIP_SANITIZERS:-0}" != 1 ]; then
  mapfile -t unit_tests < <(cd tests && find unit -name '*_test.cc' | sed 's#/#_#g; s#\.cc$##' | sort)
  asan_tests=("${unit_tests[@]}"
    integration_common_dns_resolver_test integration_common_spf_evaluator_test
    integration_common_milter_milter_test integration_common_milter_tcp_milter_test
    integration_common_milter_engine_test integration_common_redis_connection_test integration_common_redis_pool_test
    integration_common_redis_batcher_test integration_common_redis_sentinel_test
    integration_common_health_redis_check_test integration_common_ratelimit_ratelimit_test
    integration_milters_av_clamd_client_test
    integration_milters_av_milter_test integration_milters_host_milter_test
    integration_milters_dkim_milter_test
    integration_milters_dkim_bad_input_test integration_milters_dmarc_milter_test
    integration_milters_dmarc_report_test integration_policyd_greylist_test
    integration_policyd_spf_test integration_policyd_ratelimit_test
    integration_policyd_authpolicy_policy_test integration_milters_dnscheck_dnscheck_test
    integration_milters_dkim_rotate_test integration_policyd_selective_greylist_test)
  # The programs some of these tests start (mxguard-av, mxguard-milter and mxguard-keygen for
  # its keys, mxguard-dmarc-report, mxguard-dnscheck, mxguard-dkim for the key rotation, and
  # mxguard-policyd for the selective-greylisting --check-config test)
  # are built with the same sanitizers; only the test binaries are run.
  asan_daemons=(mxguard-av mxguard-milter mxguard-keygen mxguard-dmarc-report mxguard-dnscheck
    mxguard-dkim mxguard-policyd)
  san_start=$(date +%s)
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$fuzz_build" -G Ninja -DMXGUARD_FUZZ=ON \
    -DMXGUARD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$fuzz_build" -j"$jobs" --target "${asan_tests[@]}" "${asan_daemons[@]}" || san_rc=1
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export LSAN_OPTIONS=suppressions=$root/tests/sanitizer-suppressions.txt:print_suppressions=0
  run_sanitized "$fuzz_build" "$root/build/asan.log" "${asan_tests[@]}"
  echo "sanitize: ASan+UBSan, ${#asan_tests[@]} test binaries, $(( $(date +%s) - san_start ))s"

  tsan_build=${MXGUARD_TSAN_BUILD_DIR:-$root/build/tsan}
  tsan_tests=(unit_common_policy_server_test unit_common_metrics_http_server_test
    unit_common_metrics_health_test integration_common_dns_resolver_test
    integration_common_milter_milter_test integration_common_milter_engine_test
    integration_common_milter_tcp_milter_test integration_common_redis_pool_test
    integration_common_redis_batcher_test unit_policyd_authpolicy_server_test
    integration_policyd_selective_greylist_test)
  san_start=$(date +%s)
  # clang: gcc 12 refuses Boost.Asio's atomic_thread_fence under TSan (-Werror=tsan).
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$tsan_build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMXGUARD_SANITIZE=thread >/dev/null
  # mxguard-policyd: the selective-greylisting test's --check-config case runs the binary.
  cmake --build "$tsan_build" -j"$jobs" --target "${tsan_tests[@]}" mxguard-policyd || san_rc=1
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan-suppressions.txt
  run_sanitized "$tsan_build" "$root/build/tsan.log" "${tsan_tests[@]}"
  echo "sanitize: TSan, ${#tsan_tests[@]} test binaries, $(( $(date +%s) - san_start ))s"
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LSAN_OPTIONS
fi

echo "run.sh: finished in $(( $(date +%s) - start ))s (format exit $format_rc, ctest exit $ctest_rc, package exit $package_rc, fuzz exit $fuzz_rc, sanitizers exit $san_rc)"
# ctest's summary again as the closing line, e.g. "100% tests passed, 0 tests failed out of 40".
summary=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$build/ctest.log" | tail -n 1)
if [[ $summary =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
  failed=${BASH_REMATCH[1]}; total=${BASH_REMATCH[2]}
  echo "ctest: $summary"
  echo "tests: $((total - failed)) passed, $failed failed"
fi
[ "$format_rc" = 0 ] && [ "$ctest_rc" = 0 ] && [ "$package_rc" = 0 ] && [ "$fuzz_rc" = 0 ] &&
  [ "$san_rc" = 0 ]
