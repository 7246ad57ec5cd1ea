#!/usr/bin/env bash
# spf_compare.sh: SPF policy servers under the same load, in one run: (a) pypolicyd-spf
# (Debian postfix-policyd-spf-python, one process per connection as Postfix's spawn(8) runs
# it, here through socat), (b) mxguard-policyd with checks = spf. Both ask the same DNS server
# (tests/fixtures/dns_server.py on 127.0.0.1:53, zone made here) about the same requests from
# mxguard-policy-load (new-ratio 0: 1000 known senders, so mxguard's resolver cache is warm;
# pyspf has no cache). pypolicyd-spf reads /etc/resolv.conf, so it runs in a private mount
# namespace whose resolv.conf names 127.0.0.1. Everything is private on 127.0.0.1 and stopped
# by pid on exit. Must never touch a system service.
#
# Usage: tests/bench/spf_compare.sh   (BUILD_DIR, CONNECTIONS [32], REQUESTS [5000], WARMUP [500])
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
LOAD=${LOAD:-$BUILD_DIR/tests/bench/mxguard-policy-load}
POLICYD=${POLICYD:-$BUILD_DIR/policyd/mxguard-policyd}
CONNECTIONS=${CONNECTIONS:-32}
REQUESTS=${REQUESTS:-5000}
WARMUP=${WARMUP:-500}

die() { printf 'spf_compare: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (a DNS server on port 53, a mount namespace)"
[[ -x $LOAD && -x $POLICYD ]] || die "build first: cmake --build $BUILD_DIR"
command -v policyd-spf >/dev/null || apt-get install -y -qq postfix-policyd-spf-python >/dev/null
command -v socat >/dev/null || apt-get install -y -qq socat >/dev/null
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
if (exec 3<>/dev/udp/127.0.0.1/53) 2>/dev/null && ss -lun | grep -q '127.0.0.1:53 '; then
  die "something already listens on 127.0.0.1:53"
fi

tmp=$(mktemp -d /tmp/mxguard-spfbench.XXXXXX)
chmod 755 "$tmp"
started=()
cleanup() {
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; die "nothing on port $1"; }

# The zone: the load generator's known senders (listN@senderK.example, K < 97, clients in
# 10/8) pass; HELO names (mxN.senderK.example) have no record (none).
{
  echo '$TTL 300'
  echo 'example. IN SOA ns1.example. hostmaster.example. 1 3600 600 86400 300'
  for k in $(seq 0 96); do
    echo "sender$k.example. IN TXT \"v=spf1 ip4:192.0.2.0/24 include:_spf.provider.example -all\""
  done
  echo '_spf.provider.example. IN TXT "v=spf1 ip4:10.0.0.0/8 ~all"'
} > "$tmp/zone"
/usr/bin/python3 "$repo/tests/fixtures/dns_server.py" --zone "$tmp/zone" --port 53 \
  --address 127.0.0.1 --port-file "$tmp/dns.port" > "$tmp/dns.log" 2>&1 &
started+=($!)
for _ in $(seq 1 100); do [[ -s $tmp/dns.port ]] && break; sleep 0.1; done
[[ -s $tmp/dns.port ]] || { cat "$tmp/dns.log"; die "DNS server did not start"; }

run_load() {  # port pids...
  local port=$1; shift
  local pidargs=()
  for p in "$@"; do pidargs+=(--pid "$p"); done
  "$LOAD" --target "inet:127.0.0.1:$port" --connections "$CONNECTIONS" --requests "$REQUESTS" \
    --new-ratio 0 --pool 1000 --warmup "$WARMUP" --timeout-ms 30000 "${pidargs[@]}" --json
}

# (a) pypolicyd-spf, one process per connection (socat fork = Postfix spawn), resolv.conf → us.
cat > "$tmp/policyd-spf.conf" <<CONF
debugLevel = 0
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1
Header_Type = SPF
Hide_Receiver = Yes
CONF
echo "nameserver 127.0.0.1" > "$tmp/resolv.conf"
pyport=$(free_port)
unshare -m sh -c "mount --bind '$tmp/resolv.conf' /etc/resolv.conf && exec socat \
  TCP-LISTEN:$pyport,bind=127.0.0.1,reuseaddr,fork,backlog=128 \
  EXEC:'policyd-spf $tmp/policyd-spf.conf'" > "$tmp/pyspf.log" 2>&1 &
pypid=$!
started+=("$pypid")
wait_port "$pyport"
py_json=$(run_load "$pyport" "$pypid")

# (b) mxguard-policyd, checks = spf, the same DNS server.
mxport=$(free_port)
"$POLICYD" --foreground --log-target stderr --listen "inet:127.0.0.1:$mxport" \
  --checks spf --dns-servers 127.0.0.1@53 --redis-url redis://127.0.0.1:1/0 \
  --greylist-whitelist-clients /dev/null --greylist-whitelist-recipients /dev/null \
  > "$tmp/mxguard.log" 2>&1 &
mxpid=$!
started+=("$mxpid")
wait_port "$mxport"
mx_json=$(run_load "$mxport" "$mxpid")

row() {
  jq -r --arg name "$1" '"| \($name) | \(.requests_per_s|floor) | \(.latency_us.p50) | \(.latency_us.p99) | \(.errors) | \((.server_cpu_s*1e6/.requests)|floor) | \((.server_hwm_kb/1024*10|floor)/10) MiB | \(.actions|to_entries|map("\(.key) \(.value)")|join(", ")) |"' <<<"$2"
}
echo
echo "SPF checks at $CONNECTIONS connections, $REQUESTS requests (after $WARMUP warm-up), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| tool | checks/s | p50 µs | p99 µs | errors | server CPU µs/check | peak RSS | actions |"
echo "|---|---|---|---|---|---|---|---|"
row "pypolicyd-spf $(dpkg-query -W -f='${Version}' postfix-policyd-spf-python) (socat fork, like spawn; CPU not summed over its processes)" "$py_json"
row "mxguard-policyd (checks = spf)" "$mx_json"
py=$(jq '.requests_per_s' <<<"$py_json"); mx=$(jq '.requests_per_s' <<<"$mx_json")
echo
echo "mxguard-policyd / pypolicyd-spf: $(/usr/bin/python3 -c "print(round($mx/$py, 1))")x"
