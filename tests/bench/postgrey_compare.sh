#!/usr/bin/env bash
# postgrey_compare.sh: one-shot comparison of greylisting policy servers under the same load,
# driven by mxguard-policy-load: (a) postgrey, (b) mxguard-policyd with a private Redis,
# (c) redis-benchmark against that Redis as the ceiling. Prints a Markdown table and the exact
# commands. Everything runs privately on 127.0.0.1 with free ports and a temp dir, and is
# stopped by pid and removed on exit. Must never touch a system service, its config or its data.
#
# Usage: tests/bench/postgrey_compare.sh            (see tests/bench/README.md)
# Environment (defaults in brackets):
#   BUILD_DIR          build tree [<repo>/build]
#   LOAD               load generator [$BUILD_DIR/tests/bench/mxguard-policy-load]
#   CONNECTIONS [32]  REQUESTS [20000]  NEW_RATIO [0.5]  POOL [1000]  WARMUP [1000]
#   DELAY [5]          greylist delay in seconds given to both servers; known triplets are
#                      primed first and the load waits DELAY+1 s so they pass the greylist
#   MXGUARD_POLICYD_CMD  mxguard-policyd command line; placeholders @LISTEN@ (inet:127.0.0.1:P),
#                      @HOSTPORT@ (127.0.0.1:P), @REDIS_URL@ (redis://127.0.0.1:P),
#                      @REDIS_PORT@, @DELAY@, @TMP@.
#                      Unset: "$BUILD_DIR/policyd/mxguard-policyd --listen=@LISTEN@
#                      --redis-url=@REDIS_URL@ --greylist-delay=@DELAY@ --foreground --log-target=stderr --greylist-whitelist-clients=/dev/null --greylist-whitelist-recipients=/dev/null" if that binary exists,
#                      else this part is skipped. It must stay in the foreground.
#   SKIP_POSTGREY=1, SKIP_REDIS=1, SKIP_SUSPICIOUS=1   leave out parts.
#   SUSPICIOUS_WARMUP [9000]  warm-up requests of the greylist-mode=suspicious run: enough
#                      that every client address of the run was looked up once before
#                      measuring (new triplets cycle through 4095 addresses), so the DNS
#                      cache is warm.
# The suspicious run is mxguard-policyd with greylist-mode=suspicious and one DNSBL served by
# python3-dnslib's zoneresolver on loopback: new-triplet clients (172.16/12) are listed
# (127.0.0.2) and greylisted, known clients (10/8) are answered 127.0.0.1, outside the filter,
# i.e. not listed, and skip greylisting. (Not NXDOMAIN: zoneresolver sends NXDOMAIN without an
# SOA, which no resolver caches, and this run is about warm caches.) SPF is not part of the
# workload (no run here checks SPF), so the conditions are dnsbl and helo-not-fqdn.
#   REDIS_BENCH_N [100000]  requests per redis-benchmark test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
LOAD=${LOAD:-$BUILD_DIR/tests/bench/mxguard-policy-load}
CONNECTIONS=${CONNECTIONS:-32}
REQUESTS=${REQUESTS:-20000}
NEW_RATIO=${NEW_RATIO:-0.5}
POOL=${POOL:-1000}
WARMUP=${WARMUP:-1000}
DELAY=${DELAY:-5}
REDIS_BENCH_N=${REDIS_BENCH_N:-100000}
SKIP_POSTGREY=${SKIP_POSTGREY:-0}
SKIP_REDIS=${SKIP_REDIS:-0}
SKIP_SUSPICIOUS=${SKIP_SUSPICIOUS:-0}
SUSPICIOUS_WARMUP=${SUSPICIOUS_WARMUP:-9000}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'postgrey_compare: %s\n' "$*" >&2; exit 1; }

[[ -x $LOAD ]] ||
  die "no load generator at $LOAD; build it: cmake --build $BUILD_DIR --target mxguard-policy-load"
command -v jq >/dev/null || die "jq reads the load generator's JSON (apt-get install jq)"

tmp=$(mktemp -d /tmp/mxguard-bench.XXXXXX)
chmod 755 "$tmp"  # postgrey drops to its own user and must reach its dbdir below
started=()        # pids this script started, and only those are stopped
cleanup() {
  local pid
  for pid in "${started[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    # Give each a moment, then insist: a wedged server must not outlive the run.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commands=()  # the exact commands, for the report
record() { commands+=("$(printf '%q ' "$@")"); }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts on 127.0.0.1:$1, failing early if pid $2 has died.
wait_port() {
  local port=$1 pid=$2 name=$3 log=$4
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$name exited during startup"; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  cat "$log" >&2
  die "$name did not listen on 127.0.0.1:$port within 15 s"
}

rows=()   # Markdown table rows
notes=()  # lines printed under the table
# Runs the load generator against $1 (socket), pids in $3...; label $2. Adds a table row.
run_load() {
  local target=$1 label=$2 rss_note=$3
  shift 3
  local pid_args=() p
  for p in "$@"; do pid_args+=(--pid "$p"); done
  local cmd=("$LOAD" --target "$target" --connections "$CONNECTIONS" --requests "$REQUESTS"
             --new-ratio "$NEW_RATIO" --pool "$POOL" --prime --prime-wait "$((DELAY + 1))"
             --warmup "$WARMUP" "${pid_args[@]}" --json)
  record "${cmd[@]}"
  log "$label: ${cmd[*]}"
  local out="$tmp/$label.json"
  "${cmd[@]}" >"$out" || log "$label: the load generator reported errors (see below)"
  jq -c . "$out" >&2
  rows+=("$(jq -r --arg tool "$label" --arg note "$rss_note" '
    "| \($tool) | \(.requests_per_s | floor) | \(.latency_us.p50) | \(.latency_us.p99)"
    + " | \(.latency_us.max) | \(.errors) | "
    + (if .server_cpu_s then "\(.server_cpu_s * 1e6 / .requests | floor)" else "n/a" end) + " | "
    + (if .server_hwm_kb then "\(.server_rss_kb / 1024 | floor) MiB"
       + " (peak \(.server_hwm_kb / 1024 | floor) MiB)\($note)" else "n/a" end)
    + " | \(.actions | to_entries | map("\(.key) \(.value)") | join(", ")) |"' "$out")")
}

# (a) postgrey ---------------------------------------------------------------------------------
if [[ $SKIP_POSTGREY != 1 ]]; then
  if ! command -v postgrey >/dev/null; then
    log "postgrey missing: installing the Debian package (its service is not used here)"
    # policy-rc.d-less containers may start the service; we never talk to it.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgrey >&2
  fi
  pg_port=$(free_port)
  pg_db=$tmp/postgrey-db
  mkdir -p "$pg_db"
  pg_user=()
  if [[ $(id -u) == 0 ]]; then
    chown postgrey: "$pg_db"  # postgrey drops root for its default user
  else
    pg_user=(--user="$(id -un)" --group="$(id -gn)")
  fi
  pg_cmd=(postgrey --inet="127.0.0.1:$pg_port" --dbdir="$pg_db" --delay="$DELAY"
          "${pg_user[@]}")
  record "${pg_cmd[@]}"
  log "postgrey: ${pg_cmd[*]}"
  "${pg_cmd[@]}" >"$tmp/postgrey.log" 2>&1 &
  pg_pid=$!
  started+=("$pg_pid")
  wait_port "$pg_port" "$pg_pid" postgrey "$tmp/postgrey.log"
  run_load "inet:127.0.0.1:$pg_port" postgrey "" "$pg_pid"
fi

# (b) private Redis and mxguard-policyd --------------------------------------------------------
if [[ $SKIP_REDIS != 1 ]]; then
  command -v redis-server >/dev/null || die "redis-server missing (apt-get install redis-server)"
  redis_port=$(free_port)
  mkdir -p "$tmp/redis"
  redis_cmd=(redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/redis" --save ''
             --appendonly no --daemonize no --protected-mode yes --logfile "$tmp/redis.log")
  record "${redis_cmd[@]}"
  log "redis: ${redis_cmd[*]}"
  "${redis_cmd[@]}" &
  redis_pid=$!
  started+=("$redis_pid")
  wait_port "$redis_port" "$redis_pid" redis-server "$tmp/redis.log"

  policyd_bin=$BUILD_DIR/policyd/mxguard-policyd
  template=${MXGUARD_POLICYD_CMD:-}
  if [[ -z $template && -x $policyd_bin ]]; then
    # The daemon's flags are not settled yet; override with MXGUARD_POLICYD_CMD if these differ.
    template="$policyd_bin --listen=@LISTEN@ --redis-url=@REDIS_URL@ --greylist-delay=@DELAY@ --foreground --log-target=stderr --greylist-whitelist-clients=/dev/null --greylist-whitelist-recipients=/dev/null"
  fi
  if [[ -z $template ]]; then
    log "mxguard-policyd: SKIPPED ($policyd_bin does not exist and MXGUARD_POLICYD_CMD is unset)"
    rows+=("| mxguard-policyd | skipped: not built yet | | | | | | | |")
  else
    md_port=$(free_port)
    md_cmd=${template//@LISTEN@/inet:127.0.0.1:$md_port}
    md_cmd=${md_cmd//@HOSTPORT@/127.0.0.1:$md_port}
    md_cmd=${md_cmd//@REDIS_URL@/redis://127.0.0.1:$redis_port}
    md_cmd=${md_cmd//@REDIS_PORT@/$redis_port}
    md_cmd=${md_cmd//@DELAY@/$DELAY}
    md_cmd=${md_cmd//@TMP@/$tmp}
    commands+=("$md_cmd")
    log "mxguard-policyd: $md_cmd"
    # exec, so $! is the daemon itself and RSS and the final kill reach the right process.
    bash -c "exec $md_cmd" >"$tmp/policyd.log" 2>&1 &
    md_pid=$!
    started+=("$md_pid")
    wait_port "$md_port" "$md_pid" mxguard-policyd "$tmp/policyd.log"
    run_load "inet:127.0.0.1:$md_port" mxguard-policyd " (policyd + redis)" "$md_pid" "$redis_pid"

    # (b2) the same daemon with greylist-mode=suspicious and a DNSBL, warm DNS cache ----------
    if [[ $SKIP_SUSPICIOUS != 1 ]]; then
      dns_port=$(free_port)
      cat >"$tmp/bl.zone" <<'ZONE'
$ORIGIN bench.test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 3600
*.172.bl IN A 127.0.0.2
*.10.bl IN A 127.0.0.1
ZONE
      dns_cmd=(/usr/bin/python3 -u -m dnslib.zoneresolver --zone "$tmp/bl.zone" --glob
               --address 127.0.0.1 --port "$dns_port")
      record "${dns_cmd[@]}"
      log "dns: ${dns_cmd[*]}"
      "${dns_cmd[@]}" >"$tmp/dns.log" 2>&1 &
      dns_pid=$!
      started+=("$dns_pid")
      for _ in $(seq 1 50); do grep -q "Starting Zone Resolver" "$tmp/dns.log" && break; sleep 0.1; done
      sus_port=$(free_port)
      sus_cmd=${template//@LISTEN@/inet:127.0.0.1:$sus_port}
      sus_cmd=${sus_cmd//@HOSTPORT@/127.0.0.1:$sus_port}
      sus_cmd=${sus_cmd//@REDIS_URL@/redis://127.0.0.1:$redis_port}
      sus_cmd=${sus_cmd//@REDIS_PORT@/$redis_port}
      sus_cmd=${sus_cmd//@DELAY@/$DELAY}
      sus_cmd=${sus_cmd//@TMP@/$tmp}
      # Its own key prefix: the run before left its triplets in this Redis.
      sus_cmd+=" --redis-prefix=mxgsel: --greylist-mode=suspicious"
      sus_cmd+=" --greylist-suspicious-when=dnsbl,helo-not-fqdn"
      sus_cmd+=" '--greylist-dnsbl-sites=bl.bench.test=127.0.0.[2..11]'"
      sus_cmd+=" --dns-servers=127.0.0.1@$dns_port"
      commands+=("$sus_cmd")
      log "mxguard-policyd suspicious: $sus_cmd"
      bash -c "exec $sus_cmd" >"$tmp/policyd-suspicious.log" 2>&1 &
      sus_pid=$!
      started+=("$sus_pid")
      wait_port "$sus_port" "$sus_pid" "mxguard-policyd (suspicious)" "$tmp/policyd-suspicious.log"
      saved_warmup=$WARMUP
      WARMUP=$SUSPICIOUS_WARMUP
      run_load "inet:127.0.0.1:$sus_port" "mxguard-policyd suspicious" " (policyd + redis)" \
        "$sus_pid" "$redis_pid"
      WARMUP=$saved_warmup
      dns_queries=$(grep -c "Request:" "$tmp/dns.log" || true)
      # The workload has POOL known client addresses and at most 4095 new ones; no more
      # queries than that means every lookup after the first per address came from the cache.
      notes+=("mxguard-policyd suspicious: the DNSBL server answered $dns_queries queries in" \
              "all (prime, $SUSPICIOUS_WARMUP warm-up and measured requests) for at most" \
              "$((POOL + 4095)) distinct client addresses; list errors logged:" \
              "$(grep -c "counted as not listed" "$tmp/policyd-suspicious.log" || true).")
    fi
  fi

  # (c) redis-benchmark: the ceiling for one round trip to Redis per request ----------------------
  # A greylist-shaped script: look the triplet up, create it with a TTL when it is new.
  lua="local v = redis.call('GET', KEYS[1]) if not v then redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400) return 0 end return 1"
  sha=$(redis-cli -h 127.0.0.1 -p "$redis_port" SCRIPT LOAD "$lua")
  commands+=("redis-cli -h 127.0.0.1 -p $redis_port SCRIPT LOAD $(printf '%q' "$lua")")
  rb_common=(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$CONNECTIONS" -n "$REDIS_BENCH_N"
             -r 1000000 --csv)
  redis_row() {  # label, csv file: "test","rps","avg","min","p50","p95","p99","max" in ms
    local label=$1 file=$2 rss
    rss=$(awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%d MiB (peak %d MiB)", r/1024, h/1024}' \
          "/proc/$redis_pid/status")
    tail -n +2 "$file" | tr -d '"' | awk -F, -v label="$label" -v rss="$rss" \
      '{ split($1, w, " "); printf "| %s %s | %.0f | %.0f | %.0f | %.0f | | | %s | |\n", label, w[1], $2, $5 * 1000, $7 * 1000, $8 * 1000, rss }'
  }
  rb_eval=("${rb_common[@]}" EVALSHA "$sha" 1 "gl:__rand_int__" 1700000000)
  record "${rb_eval[@]}"
  log "redis-benchmark: ${rb_eval[*]}"
  "${rb_eval[@]}" >"$tmp/rb-eval.csv"
  rb_setget=("${rb_common[@]}" -t "set,get")
  record "${rb_setget[@]}"
  log "redis-benchmark: ${rb_setget[*]}"
  "${rb_setget[@]}" >"$tmp/rb-setget.csv"
  while IFS= read -r row; do rows+=("$row"); done < <(
    redis_row redis-benchmark "$tmp/rb-eval.csv"
    redis_row redis-benchmark "$tmp/rb-setget.csv"
  )
fi

# Report -----------------------------------------------------------------------------------------
cat <<EOF

## Policy server comparison ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r))

Load: $CONNECTIONS connections, $REQUESTS measured requests after $WARMUP warm-up, new-triplet
ratio $NEW_RATIO, pool of $POOL known triplets primed and aged past a ${DELAY}s greylist delay.
Latencies in µs. Server CPU is utime+stime over the measured requests (prime and warm-up
excluded); for mxguard-policyd it includes Redis. RSS is VmRSS at the end (peak = VmHWM).

| tool | req/s | p50 µs | p99 µs | max µs | errors | server CPU µs/req | RSS | actions |
|---|---|---|---|---|---|---|---|---|
EOF
printf '%s\n' "${rows[@]}"
if ((${#notes[@]})); then printf '\n%s' "${notes[*]}"; printf '\n'; fi
printf '\nCommands:\n\n```\n'
printf '%s\n' "${commands[@]}"
printf '```\n'
