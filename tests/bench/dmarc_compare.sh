#!/usr/bin/env bash
# dmarc_compare.sh: DMARC milters under the same load, in one run: OpenDMARC (Debian opendmarc
# 1.4.2, the tool mxguard-dmarc replaces) and mxguard-dmarc, same zone, same 4 KiB message,
# driven through the milter protocol by miltertest (C concurrent clients, each one connection
# with N messages in a row). The message comes from 198.51.100.1 with From and envelope sender
# example.test (p=reject, rua=, SPF "ip4:198.51.100.1 -all") and carries the A-R header a DKIM
# milter in front would have added (dkim=pass header.d=example.test); both milters trust it,
# check SPF themselves and record report data (OpenDMARC: HistoryFile; mxguard-dmarc: a
# private Redis). A second run sends a forged From of the same domain (SPF fail → reject).
#
# No per-message macros: miltertest writes a macro command and the next command in two small
# segments without waiting for a reply, so client-side Nagle plus the server's delayed ACK cost
# 40 ms a message over TCP for any milter (Postfix writes them in one flush).
#
# OpenDMARC reads /etc/resolv.conf only, so the whole run happens in a private network and
# mount namespace (unshare) where resolv.conf points at tests/fixtures/dns_server.py on
# 127.0.0.1:53. Everything is private and stopped by pid on exit. Never touches a system service.
#
# Usage: tests/bench/dmarc_compare.sh   (BUILD_DIR, CLIENTS [2], MESSAGES [1000] per client)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
DMARC=$BUILD_DIR/milters/dmarc/mxguard-dmarc
CLIENTS=${CLIENTS:-2}
MESSAGES=${MESSAGES:-1000}

die() { printf 'dmarc_compare: %s\n' "$*" >&2; exit 1; }
[[ -x $DMARC ]] || die "build first: cmake --build $BUILD_DIR"
if [[ -z ${MXGUARD_BENCH_NS:-} ]]; then
  command -v opendmarc >/dev/null || apt-get install -y -qq opendmarc >/dev/null
  command -v miltertest >/dev/null || apt-get install -y -qq miltertest >/dev/null
  exec env MXGUARD_BENCH_NS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up

tmp=$(mktemp -d /tmp/mxguard-dmarcbench.XXXXXX)
chmod 755 "$tmp"
started=()
cleanup() {
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
wait_socket() {  # inet:PORT@127.0.0.1, inet:127.0.0.1:PORT, local:/path or unix:/path
  case $1 in
    inet:*@*) local p=${1#inet:}; wait_port "${p%@*}" ;;
    inet:*) wait_port "${1##*:}" ;;
    *) for _ in $(seq 100); do [[ -S ${1#*:} ]] && return 0; sleep 0.1; done; die "no socket $1" ;;
  esac
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; die "nothing on port $1"; }

cat >"$tmp/zone" <<'EOF'
$ORIGIN test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
_dmarc.example IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"
example IN TXT "v=spf1 ip4:198.51.100.1 -all"
example IN A 198.51.100.1
EOF
/usr/bin/python3 "$repo/tests/fixtures/dns_server.py" --zone "$tmp/zone" --port 53 \
  --port-file "$tmp/dns.port" >"$tmp/dns.log" 2>&1 </dev/null &
started+=($!)
for _ in $(seq 50); do [[ -s $tmp/dns.port ]] && break; sleep 0.1; done
echo "nameserver 127.0.0.1" >"$tmp/resolv.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf

redis-server --bind 127.0.0.1 --port 6390 --save '' --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
started+=($!)
wait_port 6390


lua_message() {  # $1 = envelope sender, $2 = expected reply, $3 = count
  cat <<EOF2
local n = $3
conn = mt.connect(os.getenv("SOCKET"), 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "mail.example.test", "198.51.100.1") ~= nil then error("conninfo") end
if mt.helo(conn, "mail.example.test") ~= nil then error("helo") end
for i = 1, n do
  if mt.mailfrom(conn, "<$1>") ~= nil then error("mailfrom") end
  mt.header(conn, "Authentication-Results", " mx.bench.test; dkim=pass header.d=example.test header.s=s1")
  mt.header(conn, "From", " Alice <alice@example.test>")
  mt.header(conn, "To", " bob@example.net")
  mt.header(conn, "Subject", " benchmark message")
  mt.header(conn, "Date", " Sun, 22 Nov 2026 10:00:00 +0000")
  mt.header(conn, "Message-ID", " <bench@example.test>")
  mt.eoh(conn)
  mt.eom(conn)
  local r = mt.getreply(conn)
  if r ~= $2 then
    mt.echo("unexpected reply " .. tostring(r))
    error("unexpected reply")
  end
  if i == 1 then
    for j = 0, 2 do
      local a = mt.getheader(conn, "Authentication-Results", j)
      if a ~= nil then mt.echo("AR<<" .. a .. ">>") end
    end
  end
end
mt.disconnect(conn)
EOF2
}
lua_message "bounce@example.test" SMFIR_ACCEPT "$MESSAGES" >"$tmp/pass.lua"
# The forged run: SPF fails, the A-R header names another domain; both milters reject.
lua_message "x@elsewhere.test" SMFIR_REPLYCODE "$MESSAGES" | sed 's/header.d=example.test/header.d=elsewhere.test/' >"$tmp/reject.lua"

run() {  # $1 label, $2 libmilter socket, $3 pid, $4 script, $5 clients; prints one row
  local label=$1 socket=$2 pid=$3 script=$4 clients=$5 start end pids=() rc=0
  sed "s/^local n = .*/local n = 20/" "$script" >"$tmp/warm.lua"
  SOCKET="$socket" miltertest -s "$tmp/warm.lua" >"$tmp/warm.out" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    { SOCKET="$socket" miltertest -v -s "$tmp/warm.lua" >"$tmp/verbose.out" 2>&1; tail -n 6 "$tmp/verbose.out"; tail -n 5 "$tmp"/*.log; } || true
    die "$label: warm-up failed (miltertest exit $rc)"
  fi
  local cpu0; cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  start=$(date +%s.%N)
  for i in $(seq "$clients"); do
    SOCKET="$socket" miltertest -s "$script" >"$tmp/run.$i.out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { tail -n 5 "$tmp"/run.*.out "$tmp"/*.log; die "$label: run failed"; }; done
  end=$(date +%s.%N)
  local cpu1; cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  local msgs=$((clients * MESSAGES))
  printf '| %-44s | %7s | %8.0f | %10.1f | %5.1f MB |\n' "$label" "$clients" \
    "$(echo "$msgs / ($end - $start)" | bc -l)" \
    "$(echo "($cpu1 - $cpu0) * 1000 / $msgs" | bc -l)" \
    "$(echo "$rss / 1024" | bc -l)"
}

start_opendmarc() {  # $1 = socket in OpenDMARC syntax
  cat >"$tmp/opendmarc.conf" <<EOF2
Syslog false
Background false
Socket $1
AuthservID mx.bench.test
TrustedAuthservIDs mx.bench.test
IgnoreAuthenticatedClients true
RejectFailures true
SPFSelfValidate true
HistoryFile $tmp/opendmarc.dat
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
PidFile $tmp/opendmarc.pid
UserID root
EOF2
  opendmarc -f -c "$tmp/opendmarc.conf" >"$tmp/opendmarc.log" 2>&1 &
  pid=$!
  started+=("$pid")
  wait_socket "$1"
}
start_mxguard() {  # $1 = listen in Postfix syntax
  "$DMARC" --foreground --log-target stderr --log-level warning --listen "$1" \
    --dns-servers 127.0.0.1 --authserv-id mx.bench.test --trusted-networks 127.0.0.1/32 \
    --redis-url redis://127.0.0.1:6390/0 ${MXGUARD_DMARC_EXTRA:-} >"$tmp/mxguard.log" 2>&1 &
  pid=$!
  started+=("$pid")
  wait_socket "$1"
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; }

echo "$MESSAGES messages per client, $(nproc) cores; CPU = the daemon's user+system ms per 100 messages"
echo "| run                                          | clients |   msgs/s | CPU ms/100 | peak RSS |"
echo "|---|---:|---:|---:|---:|"
for transport in unix inet; do
  if [[ $transport == inet ]]; then od="inet:8893@127.0.0.1"; odt="inet:8893@127.0.0.1"; mx="inet:127.0.0.1:8894"; mxt="inet:8894@127.0.0.1"
  else od="local:$tmp/od.sock"; odt="unix:$tmp/od.sock"; mx="unix:$tmp/mx.sock"; mxt="unix:$tmp/mx.sock"; fi
  for clients in 1 "$CLIENTS"; do
    if [[ -z ${SKIP_OPENDMARC:-} ]]; then
      start_opendmarc "$od"
      run "OpenDMARC pass, aligned DKIM+SPF ($transport)" "$odt" "$pid" "$tmp/pass.lua" "$clients"
      run "OpenDMARC reject, forged From ($transport)" "$odt" "$pid" "$tmp/reject.lua" "$clients"
      stop
    fi
    start_mxguard "$mx"
    run "mxguard-dmarc pass, aligned DKIM+SPF ($transport)" "$mxt" "$pid" "$tmp/pass.lua" "$clients"
    run "mxguard-dmarc reject, forged From ($transport)" "$mxt" "$pid" "$tmp/reject.lua" "$clients"
    stop
  done
done
echo
echo "mxguard-dmarc aggregate rows in Redis: $(redis-cli -p 6390 --raw KEYS 'mxg:{dmarc}:agg:*' | wc -l) period(s); history file of OpenDMARC: $(wc -c <"$tmp/opendmarc.dat" 2>/dev/null || echo 0) bytes"
