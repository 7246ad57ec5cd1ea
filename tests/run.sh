#!/usr/bin/env bash
# The test command (README.md, .ci/run): installs dependencies on Debian bookworm, builds,
# runs every unit and integration test with ctest, builds and tests the Debian package
# (packaging/test.sh), then builds the fuzz targets with clang-14 and runs each for a short
# smoke period. Exits non-zero on any failure.
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

# The .deb: build, lintian, dpkg -i on this machine, run, purge (packaging/test.sh; root only).
package_rc=0
if [ "${MXGUARD_SKIP_PACKAGE:-0}" = 1 ]; then
  echo "run.sh: package test skipped (MXGUARD_SKIP_PACKAGE=1)"
elif [ "$(id -u)" != 0 ]; then
  echo "run.sh: package test skipped (needs root for dpkg -i)"
else
  MXGUARD_JOBS=$jobs bash packaging/test.sh || package_rc=$?
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

echo "run.sh: finished in $(( $(date +%s) - start ))s (format exit $format_rc, ctest exit $ctest_rc, package exit $package_rc, fuzz exit $fuzz_rc)"
# ctest's summary again as the closing line, e.g. "100% tests passed, 0 tests failed out of 40".
summary=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$build/ctest.log" | tail -n 1)
if [[ $summary =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
  failed=${BASH_REMATCH[1]}; total=${BASH_REMATCH[2]}
  echo "ctest: $summary"
  echo "tests: $((total - failed)) passed, $failed failed"
fi
[ "$format_rc" = 0 ] && [ "$ctest_rc" = 0 ] && [ "$package_rc" = 0 ] && [ "$fuzz_rc" = 0 ]
