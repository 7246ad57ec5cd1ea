#!/usr/bin/env bash
# policyd_scaling.sh: aggregate greylisting throughput of 1, 2 and 3 mxguard-policyd instances
# sharing one private Redis (the several-MX shape on one machine), with the load split evenly:
# CONNECTIONS in total, one mxguard-policy-load per instance, all at once. Prints a Markdown
# table (sum of req/s, worst p99, CPU of Redis and of the policyd processes per request) and
# the exact commands. Where the curve flattens, the last column says whether Redis (one core)
# or the machine's CPUs ran out. Loopback only, temp dir, stops only the pids it started.
#
# Usage: BUILD_DIR=build/ci bash tests/bench/policyd_scaling.sh
# Environment: BUILD_DIR [<repo>/build], CONNECTIONS [32], DURATION [10] seconds per point,
#   POLICYD [$BUILD_DIR/policyd/mxguard-policyd] (e.g. an older build, to compare),
#   INSTANCES ["1 2 3"], NEW_RATIO [0.5], POOL [1000], DELAY [5], POLICYD_ARGS [] (more options
#   for every instance, e.g. "--threads=2 --redis-writers=1"; split on spaces).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
LOAD=$BUILD_DIR/tests/bench/mxguard-policy-load
POLICYD=${POLICYD:-$BUILD_DIR/policyd/mxguard-policyd}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10}
INSTANCES=${INSTANCES:-1 2 3}
NEW_RATIO=${NEW_RATIO:-0.5}
POOL=${POOL:-1000}
DELAY=${DELAY:-5}
read -ra policyd_args <<<"${POLICYD_ARGS:-}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'policyd_scaling: %s\n' "$*" >&2; exit 1; }
[[ -x $LOAD && -x $POLICYD ]] || die "build $LOAD and $POLICYD first"
command -v jq >/dev/null || die "jq reads the load generator's JSON (apt-get install jq)"

tmp=$(mktemp -d /tmp/mxguard-scaling.XXXXXX)
started=()
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() { stop_pids "${started[@]}"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
}
cpu_ticks() {  # utime+stime of the given pids, in clock ticks
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

commands=()
redis_port=$(free_port)
mkdir -p "$tmp/redis"
redis_cmd=(redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/redis" --save ''
           --appendonly no --daemonize no --logfile "$tmp/redis.log")
commands+=("${redis_cmd[*]}")
"${redis_cmd[@]}" &
redis_pid=$!
started+=("$redis_pid")
wait_port "$redis_port"

rows=()
for n in $INSTANCES; do
  redis-cli -p "$redis_port" FLUSHALL >/dev/null
  pids=()
  ports=()
  for i in $(seq "$n"); do
    port=$(free_port)
    cmd=("$POLICYD" --listen="inet:127.0.0.1:$port" --redis-url="redis://127.0.0.1:$redis_port"
         --greylist-delay="$DELAY" --foreground --log-target=stderr
         --greylist-whitelist-clients=/dev/null --greylist-whitelist-recipients=/dev/null
         "${policyd_args[@]}")
    [[ $n == 1 && $i == 1 ]] && commands+=("${cmd[*]}")
    "${cmd[@]}" 2>"$tmp/policyd-$n-$i.log" &
    pids+=($!)
    started+=($!)
    ports+=("$port")
    wait_port "$port"
  done
  per=$((CONNECTIONS / n))
  log "$n instance(s), $per connections each, ${DURATION}s"
  # Prime each instance's pool first (unmeasured), so the measured mix has passing triplets.
  load_pids=()
  for i in $(seq "$n"); do
    cmd=("$LOAD" --target "inet:127.0.0.1:${ports[$((i - 1))]}" --connections "$per"
         --duration "$DURATION" --new-ratio "$NEW_RATIO" --pool "$POOL" --prime
         --prime-wait "$((DELAY + 1))" --seed "$i" --json)
    [[ $n == 1 ]] && commands+=("${cmd[*]}")
    "${cmd[@]}" >"$tmp/load-$n-$i.json" 2>"$tmp/load-$n-$i.err" &
    load_pids+=($!)
  done
  # CPU is sampled over the measured part only: after priming and its wait.
  sleep "$((DELAY + 2))"
  redis_before=$(cpu_ticks "$redis_pid")
  policyd_before=$(cpu_ticks "${pids[@]}")
  for p in "${load_pids[@]}"; do wait "$p" || log "a load generator reported errors"; done
  redis_after=$(cpu_ticks "$redis_pid")
  policyd_after=$(cpu_ticks "${pids[@]}")
  total=0
  requests=0
  p99=0
  errors=0
  for i in $(seq "$n"); do
    f=$tmp/load-$n-$i.json
    total=$(jq -r --argjson t "$total" '$t + .requests_per_s' "$f")
    requests=$((requests + $(jq -r .requests "$f")))
    errors=$((errors + $(jq -r .errors "$f")))
    q=$(jq -r .latency_us.p99 "$f")
    ((q > p99)) && p99=$q
  done
  redis_us=$(( (redis_after - redis_before) * 1000000 / hz / (requests > 0 ? requests : 1) ))
  policyd_us=$(( (policyd_after - policyd_before) * 1000000 / hz / (requests > 0 ? requests : 1) ))
  redis_share=$(( (redis_after - redis_before) * 100 / hz / DURATION ))
  rows+=("| $n | $per | $(printf '%.0f' "$total") | $p99 | $errors | $redis_us | $policyd_us | ${redis_share}% |")
  stop_pids "${pids[@]}"
done

printf '\n## mxguard-policyd instances sharing one Redis (%s, %s CPUs, %s)\n\n' \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(uname -r)"
printf 'Load: %s connections in total split evenly, %s s per point, new-triplet ratio %s.\n' \
  "$CONNECTIONS" "$DURATION" "$NEW_RATIO"
printf 'CPU columns are µs per request over the measured time (approximate: the first\n'
printf 'second of measuring may overlap priming). Redis busy = Redis CPU / wall time (100%% = one core).\n\n'
printf '| instances | connections each | req/s (sum) | worst p99 µs | errors | Redis CPU µs/req | policyd CPU µs/req | Redis busy |\n'
printf '|---|---|---|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
printf '\nCommands:\n\n```\n'
printf '%s\n' "${commands[@]}"
printf '```\n'
