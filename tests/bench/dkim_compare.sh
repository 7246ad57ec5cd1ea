#!/usr/bin/env bash
# dkim_compare.sh: DKIM milters under the same load, in one run: OpenDKIM (Debian opendkim
# 2.11, the tool mxguard-dkim replaces) and mxguard-dkim, same keys, same 4 KiB message, driven
# through the milter protocol by miltertest (C concurrent clients, each one connection with N
# messages in a row, as one busy smtpd process does). Signing: client 127.0.0.1, RSA-2048
# (both), then mxguard-dkim RSA-2048 + Ed25519 dual. Verifying: client 192.0.2.1, a message
# signed once with RSA-2048, key served by tests/fixtures/dns_server.py on 127.0.0.1 (OpenDKIM
# reaches it through an unbound configuration file, mxguard-dkim through --dns-servers).
# OpenSSL's own ceiling (`openssl speed`) is printed alongside. Everything is private on
# 127.0.0.1 and stopped by pid on exit. Must never touch a system service.
#
# Usage: tests/bench/dkim_compare.sh   (BUILD_DIR, CLIENTS [2], MESSAGES [1000] per client;
#        BASELINE_DKIM=/path/to/another/mxguard-dkim adds its verify rows, e.g. an older build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
DKIM=$BUILD_DIR/milters/dkim/mxguard-dkim
KEYGEN=$BUILD_DIR/milters/dkim/mxguard-keygen
CLIENTS=${CLIENTS:-2}
MESSAGES=${MESSAGES:-1000}

die() { printf 'dkim_compare: %s\n' "$*" >&2; exit 1; }
[[ -x $DKIM && -x $KEYGEN ]] || die "build first: cmake --build $BUILD_DIR"
command -v opendkim >/dev/null || apt-get install -y -qq opendkim >/dev/null
command -v miltertest >/dev/null || apt-get install -y -qq miltertest >/dev/null

tmp=$(mktemp -d /tmp/mxguard-dkimbench.XXXXXX)
chmod 755 "$tmp"
started=()
cleanup() {
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; die "nothing on port $1"; }
# Usage note: miltertest prints nothing when a script fails; rerun a script with -v to see why.

"$KEYGEN" --domain example.test --selector rsa --dir "$tmp" >/dev/null
"$KEYGEN" --domain example.test --selector ed --type ed25519 --dir "$tmp" >/dev/null
rsa_record=$(/usr/bin/python3 - "$tmp/rsa.txt" <<'PY'
import re, sys
print("".join(re.findall(r'"([^"]*)"', open(sys.argv[1]).read())))
PY
)

# DNS for verification.
{
  echo '$ORIGIN example.test.'
  echo '$TTL 3600'
  echo '@ IN SOA ns1 hostmaster 1 3600 600 86400 60'
  printf 'rsa._domainkey IN TXT "%s" "%s"\n' "${rsa_record:0:200}" "${rsa_record:200}"
} >"$tmp/zone"
/usr/bin/python3 "$repo/tests/fixtures/dns_server.py" --zone "$tmp/zone" --port-file "$tmp/dns.port" \
  >"$tmp/dns.log" 2>&1 </dev/null &
started+=($!)
for _ in $(seq 50); do [[ -s $tmp/dns.port ]] && break; sleep 0.1; done
dns_port=$(cat "$tmp/dns.port")
cat >"$tmp/unbound.conf" <<EOF2
server:
  do-not-query-localhost: no
  local-zone: "test." nodefault
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$dns_port
EOF2

# One 4 KiB message: five headers and 56 lines of 73 bytes.
body=""
for i in $(seq -w 1 56); do body+="Line $i of a four kilobyte message body, padded to look like plain prose..\\r\\n"; done

# A signed copy for the verification runs (signed by mxguard-dkim itself, checked by python3-dkim
# in the tests; any valid RSA-2048 signature would do).
signer_port=$(free_port)
"$DKIM" --foreground --log-target stderr --log-level warning --listen "inet:127.0.0.1:$signer_port" \
  --domain example.test --selector rsa --key-file "$tmp/rsa.private" >"$tmp/signer.log" 2>&1 &
started+=($!)
wait_port "$signer_port"

lua_message() {  # $1 = client address, $2 = extra header lines (Lua), $3 = count
  cat <<EOF2
local n = $3
conn = mt.connect(os.getenv("SOCKET"), 20, 0.1)
if conn == nil then error("connect failed") end
if mt.conninfo(conn, "client", "$1") ~= nil then error("conninfo") end
for i = 1, n do
  if mt.mailfrom(conn, "<alice@example.test>") ~= nil then error("mailfrom") end
$2
  mt.header(conn, "From", " Alice <alice@example.test>")
  mt.header(conn, "To", " bob@example.net")
  mt.header(conn, "Subject", " benchmark message")
  mt.header(conn, "Date", " Sun, 22 Nov 2026 10:00:00 +0000")
  mt.header(conn, "Message-ID", " <bench@example.test>")
  mt.eoh(conn)
  mt.bodystring(conn, "$body")
  mt.eom(conn)
  local r = mt.getreply(conn)
  if r ~= SMFIR_ACCEPT and r ~= SMFIR_CONTINUE then
    mt.echo("unexpected reply " .. tostring(r))
    error("not accepted")
  end
  if i == 1 then
    local s = mt.getheader(conn, "DKIM-Signature", 0)
    if s ~= nil then mt.echo("SIG<<" .. s .. ">>") end
    local a = mt.getheader(conn, "Authentication-Results", 0)
    if a ~= nil then mt.echo("AR<<" .. a .. ">>") end
  end
end
mt.disconnect(conn)
EOF2
}

lua_message 127.0.0.1 "" 1 >"$tmp/sign-once.lua"
SOCKET="inet:$signer_port@127.0.0.1" miltertest -s "$tmp/sign-once.lua" >"$tmp/sign-once.out"
sig=$(/usr/bin/python3 - "$tmp/sign-once.out" <<'PY'
import sys
t = open(sys.argv[1]).read()
s = t[t.index("SIG<<") + 5:t.index(">>")]
print(s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t"))
PY
)
sig_header="  mt.header(conn, \"DKIM-Signature\", \"$sig\")"

lua_message 127.0.0.1 "" "$MESSAGES" >"$tmp/sign.lua"
lua_message 192.0.2.1 "$sig_header" "$MESSAGES" >"$tmp/verify.lua"

# $1 = label, $2 = libmilter socket, $3 = pid, $4 = script, $5 = clients; prints one row.
run() {
  local label=$1 socket=$2 pid=$3 script=$4 clients=$5 start end pids=()
  # warm-up (connection set-up, DNS cache)
  sed "s/^local n = .*/local n = 20/" "$script" >"$tmp/warm.lua"
  local rc=0
  SOCKET="$socket" miltertest -s "$tmp/warm.lua" >"$tmp/warm.out" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    SOCKET="$socket" miltertest -v -s "$tmp/warm.lua" 2>&1 | tail -n 8; tail -n 5 "$tmp"/*.log
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
  local result; result=$(tr '\n\t' '  ' <"$tmp/run.1.out" | grep -o 'AR<<[^>]*' | head -1 | grep -o 'dkim=[a-z]*' | head -1 || true)
  # milter CPU per message from /proc (clock ticks of 1/CLK_TCK s)
  local us; us=$(echo "($cpu1 - $cpu0) * 1000000 / $(getconf CLK_TCK) / ($clients * $MESSAGES)" | bc -l)
  printf '| %-52s | %7s | %8.0f | %6.0f | %5.1f MB | %s |\n' "$label" "$clients" \
    "$(echo "$clients * $MESSAGES / ($end - $start)" | bc -l)" "$us" "$(echo "$rss / 1024" | bc -l)" "${result:-signed}"
}

# Both set $pid; never call them in $(…): the daemon would hold the substitution's pipe open.
start_opendkim() {  # $1 = socket (OpenDKIM syntax), $2 = with DNS (yes/no)
  cat >"$tmp/opendkim.conf" <<EOF2
Syslog no
Background no
Mode sv
Socket $1
Domain example.test
Selector rsa
KeyFile $tmp/rsa.private
RequireSafeKeys false
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
OversignHeaders From
PidFile $tmp/opendkim.pid
UserID root
EOF2
  # OpenDKIM's resolver needs the unbound file to reach a DNS server on a loopback port; with
  # it, OpenDKIM 2.11.0~beta2 dies under concurrent connections ("fatal flex scanner internal
  # error"), so only the verifying run gets it.
  [[ $2 == yes ]] && echo "ResolverConfiguration $tmp/unbound.conf" >>"$tmp/opendkim.conf"
  opendkim -f -x "$tmp/opendkim.conf" >"$tmp/opendkim.log" 2>&1 &
  pid=$!
  started+=("$pid")
  for _ in $(seq 100); do
    [[ $1 == inet:* ]] && (exec 3<>/dev/tcp/127.0.0.1/"${1#inet:}") 2>/dev/null && break
    [[ $1 == inet:* ]] && { p=${1#inet:}; p=${p%@*}; (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; }
    [[ $1 == local:* && -S ${1#local:} ]] && break
    sleep 0.1
  done
}

start_mxguard() {  # $1 = listen (Postfix syntax), $2.. extra options
  local listen=$1; shift
  "${DKIM_BIN:-$DKIM}" --foreground --log-target stderr --log-level warning --listen "$listen" \
    --dns-servers "127.0.0.1@$dns_port" --authserv-id mx.bench.test "$@" >"$tmp/mxguard.log" 2>&1 &
  pid=$!
  started+=("$pid")
  for _ in $(seq 100); do
    [[ $listen == inet:* ]] && (exec 3<>/dev/tcp/127.0.0.1/"${listen##*:}") 2>/dev/null && break
    [[ $listen == unix:* && -S ${listen#unix:} ]] && break
    sleep 0.1
  done
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; }

echo "OpenSSL ceiling, one core (openssl speed):"
openssl speed -seconds 3 rsa2048 ed25519 2>/dev/null | grep -E '^rsa 2048|Ed25519' | sed 's/^/    /'
echo
echo "$MESSAGES messages of 4 KiB per client, $(nproc) cores"
echo "| run                                                  | clients |   msgs/s | CPU µs/msg | peak RSS | result |"
echo "|---|---:|---:|---:|---:|---|"
keys="--domain example.test --selector rsa --key-file $tmp/rsa.private"
dual="--domain example.test --selector rsa,ed --key-file $tmp/rsa.private,$tmp/ed.private"
for transport in inet unix; do
  p=$(free_port)
  if [[ $transport == inet ]]; then od="inet:$p@127.0.0.1"; mx="inet:127.0.0.1:$p"; lm="inet:$p@127.0.0.1"
  else od="local:$tmp/od.sock"; mx="unix:$tmp/mx.sock"; lm=""; fi
  start_opendkim "$od" no
  run "OpenDKIM sign RSA-2048 ($transport)" "${lm:-unix:$tmp/od.sock}" "$pid" "$tmp/sign.lua" "$CLIENTS"
  stop
  # shellcheck disable=SC2086
  start_mxguard "$mx" $keys
  run "mxguard-dkim sign RSA-2048 ($transport)" "${lm:-unix:$tmp/mx.sock}" "$pid" "$tmp/sign.lua" "$CLIENTS"
  run "mxguard-dkim verify RSA-2048 ($transport)" "${lm:-unix:$tmp/mx.sock}" "$pid" "$tmp/verify.lua" "$CLIENTS"
  run "mxguard-dkim verify RSA-2048 ($transport)" "${lm:-unix:$tmp/mx.sock}" "$pid" "$tmp/verify.lua" 1
  stop
  if [[ -n ${BASELINE_DKIM:-} ]]; then
    # shellcheck disable=SC2086
    DKIM_BIN=$BASELINE_DKIM start_mxguard "$mx" $keys
    run "baseline verify RSA-2048 ($transport)" "${lm:-unix:$tmp/mx.sock}" "$pid" "$tmp/verify.lua" "$CLIENTS"
    run "baseline verify RSA-2048 ($transport)" "${lm:-unix:$tmp/mx.sock}" "$pid" "$tmp/verify.lua" 1
    stop
  fi
  # shellcheck disable=SC2086
  start_mxguard "$mx" $dual
  run "mxguard-dkim sign RSA-2048 + Ed25519 dual ($transport)" "${lm:-unix:$tmp/mx.sock}" "$pid" "$tmp/sign.lua" "$CLIENTS"
  stop
  start_opendkim "$od" yes
  run "OpenDKIM verify RSA-2048 ($transport)" "${lm:-unix:$tmp/od.sock}" "$pid" "$tmp/verify.lua" 1
  stop
done
