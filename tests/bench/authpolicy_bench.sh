#!/usr/bin/env bash
# Benchmarks mxguard-authpolicy: decisions/s and latency for command=allow, command=report and a
# 50/50 mix at 32 keep-alive connections (mxguard-authpolicy-load, as Dovecot's auth process
# would send them), against a private Redis; then the Redis ceiling for the same Lua script
# (redis-benchmark EVALSHA with the daemon's arguments: 4 subjects, default limits). Prints a
# Markdown table and the exact commands. Loopback only; stops only the pids it started.
#
#   BUILD_DIR=build bash tests/bench/authpolicy_bench.sh
#
# Variables: BUILD_DIR [build], CONNECTIONS [32], REQUESTS [50000], THREADS [4] (daemon
# threads), REDIS_BENCH_N [100000].
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$root/$BUILD_DIR ;; esac
CONNECTIONS=${CONNECTIONS:-32}
REQUESTS=${REQUESTS:-50000}
THREADS=${THREADS:-4}
REDIS_BENCH_N=${REDIS_BENCH_N:-100000}
daemon=$BUILD_DIR/policyd/authpolicy/mxguard-authpolicy
load=$BUILD_DIR/tests/bench/mxguard-authpolicy-load
for f in "$daemon" "$load"; do [ -x "$f" ] || { echo "missing $f (build first)" >&2; exit 1; }; done

tmp=$(mktemp -d)
started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

redis_port=$(free_port)
mkdir "$tmp/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$tmp/redis" \
  >"$tmp/redis.log" 2>&1 &
redis_pid=$!
started+=("$redis_pid")
wait_port "$redis_port"

port=$(free_port)
metrics_port=$(free_port)
cat >"$tmp/authpolicy.conf" <<CONF
metrics-listen = inet:127.0.0.1:$metrics_port
listen = inet:127.0.0.1:$port
redis-url = redis://127.0.0.1:$redis_port/0
api-header = X-API-Key: bench
threads = $THREADS
allow-networks = 127.0.0.1/32
log-level = warning
CONF
# Decision lines go to syslog at info; the bench measures the daemon, not the log pipe.
"$daemon" --foreground --log-target stderr -c "$tmp/authpolicy.conf" >"$tmp/authpolicy.log" 2>&1 &
daemon_pid=$!
started+=("$daemon_pid")
wait_port "$port"

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# Reports are answered before they are counted (async-reports): count what was counted, and
# how long counting took, from the daemon's metrics.
metric() {
  curl -s "http://127.0.0.1:$metrics_port/metrics" |
    awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }'
}
counted_reports() { metric 'mxguard_authpolicy_decisions_total{command="report"'; }
echo "| run | decisions/s | p50 µs | p99 µs | max µs | server CPU µs/decision (daemon + Redis) | reports counted/s (dropped) |"
echo "|---|---|---|---|---|---|---|"
commands=()
hz=$(getconf CLK_TCK)
for command in allow report mixed; do
  args=("$load" --port "$port" --connections "$CONNECTIONS" --requests "$REQUESTS" --warmup 2000
        --command "$command" --api-header "X-API-Key: bench")
  commands+=("${args[*]}")
  r0=$(counted_reports) d0=$(metric mxguard_authpolicy_reports_dropped_total)
  t0=$(date +%s.%N)
  c0=$(( $(cpu_ticks "$daemon_pid") + $(cpu_ticks "$redis_pid") ))
  out=$("${args[@]}")
  # Wait until the report queue is drained (the count stops moving).
  prev=-1
  while :; do r1=$(counted_reports); [ "$r1" = "$prev" ] && break; prev=$r1; sleep 0.2; done
  t1=$(date +%s.%N)
  c1=$(( $(cpu_ticks "$daemon_pid") + $(cpu_ticks "$redis_pid") ))
  d1=$(metric mxguard_authpolicy_reports_dropped_total)
  echo "$out" >"$tmp/load-$command.txt"
  line=$(head -n 1 <<<"$out")
  get() { sed -n "s|.*$1=\([0-9.]*\).*|\1|p" <<<"$line"; }
  n=$(get requests)
  cpu=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
  counted=$(awk -v a="$r0" -v b="$r1" -v t0="$t0" -v t1="$t1" 'BEGIN { if (b > a) printf "%.0f", (b - a) / (t1 - t0 - 0.2); else print "-" }')
  echo "| mxguard-authpolicy command=$command | $(get 'decisions/s') | $(get p50_us) | $(get p99_us) | $(get max_us) | $cpu | $counted ($((d1 - d0))) |"
done

# The Redis ceiling: the daemon's own script (from common/ratelimit/ratelimit.cc), one EVALSHA
# per request with an allow's (peek) and a report's (countnew) arguments.
lua=$(awk '/R"lua\(/ {on=1; next} on && /^\)lua";/ {exit} on {print}' "$root/common/ratelimit/ratelimit.cc")
sha=$(redis-cli -h 127.0.0.1 -p "$redis_port" SCRIPT LOAD "$lua")
now=$(($(date +%s) * 1000))
subjects=(4 'mxg:rl:{ap:pw:__rand_int__}' 'mxg:rl:{ap:ip:__rand_int__}' 'mxg:rl:{ap:net:__rand_int__}' 'mxg:rl:{ap:login:__rand_int__}')
limits=(1 0 30 3600000 0   3 3600000 3 600000 0 10 600000 1 50 86400000 1
        3 3600000 10 600000 0 50 600000 1 200 86400000 1   1 0 5 600000 0)
for mode in peek countnew; do
  rb=(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$CONNECTIONS" -n "$REDIS_BENCH_N" -r 100000 --csv
      EVALSHA "$sha" "${subjects[@]}" "$now" 1 "$mode" "${limits[@]}")
  commands+=("${rb[*]}")
  "${rb[@]}" | tail -n +2 | tr -d '"' | awk -F, -v m="$mode" \
    '{ printf "| redis-benchmark EVALSHA ratelimit (%s, 4 subjects) | %.0f | %.0f | %.0f | %.0f | | |\n", m, $2, $5 * 1000, $7 * 1000, $8 * 1000 }'
done
echo
echo "Commands:"
for c in "${commands[@]}"; do echo "    $c"; done
for command in allow report mixed; do sed 's/^/    /' "$tmp/load-$command.txt" | tail -n +2; done
