#!/usr/bin/env bash
# av_compare.sh: antivirus milters under the same load, in one run, against the same private
# clamd (Debian's clamd in the foreground, a one-signature database, unix socket in a temp
# directory): Debian's clamav-milter (the tool mxguard-av replaces, private config, Foreground)
# and mxguard-av (unix and inet sockets), driven through the milter protocol by miltertest
# (C concurrent clients, each one connection with N messages in a row, as one busy smtpd
# process does), plus the same bytes streamed straight to clamd with zINSTREAM
# (tests/bench/av_instream.py) as the no-milter baseline. Two clean messages: 4 KiB of text,
# and ~300 KiB with a base64 attachment (clamd decodes the MIME parts). Both milters add their
# X-Virus-* headers. Peak RSS (VmHWM) of each milter and of clamd is printed. Everything is
# private on 127.0.0.1 and stopped by pid on exit. Must never touch a system service.
#
# Every run is repeated REPEAT times, interleaved (A B C A B C …), and the table shows the median
# and the range: on a 2-core box the clients, the milter and clamd share the CPUs, and single
# runs vary by ±20 %.
#
# Usage: tests/bench/av_compare.sh   (BUILD_DIR, CLIENTS [2], MESSAGES [500] per client, REPEAT [3])
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
AV=$BUILD_DIR/milters/av/mxguard-av
CLIENTS=${CLIENTS:-2}
MESSAGES=${MESSAGES:-500}
REPEAT=${REPEAT:-3}

die() { printf 'av_compare: %s\n' "$*" >&2; exit 1; }
[[ -x $AV ]] || die "build first: cmake --build $BUILD_DIR"
for b in /usr/sbin/clamd /usr/sbin/clamav-milter /usr/bin/miltertest; do
  [[ -x $b ]] || die "$b missing: apt-get install clamav-daemon clamav-milter miltertest"
done

tmp=$(mktemp -d /tmp/mxguard-avbench.XXXXXX)
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

# --- private clamd: one body signature (EICAR, assembled from two halves) -------------------
mkdir "$tmp/db"
eicar="X5O!P%@AP[4\\PZX54(P^)7CC)7}\$EICAR""-STANDARD-ANTIVIRUS-TEST-FILE!\$H+H*"
printf 'Mxguard.Test.EICAR:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" >"$tmp/db/test.ndb"
cat >"$tmp/clamd.conf" <<EOF2
Foreground yes
LocalSocket $tmp/clamd.sock
LocalSocketMode 666
DatabaseDirectory $tmp/db
PidFile $tmp/clamd.pid
StreamMaxLength 50M
MaxThreads 12
SelfCheck 0
User root
EOF2
/usr/sbin/clamd -c "$tmp/clamd.conf" >"$tmp/clamd.log" 2>&1 &
clamd_pid=$!
started+=("$clamd_pid")
for _ in $(seq 100); do [[ -S $tmp/clamd.sock ]] && break; sleep 0.1; done
[[ -S $tmp/clamd.sock ]] || { cat "$tmp/clamd.log"; die "clamd did not start"; }

# --- messages --------------------------------------------------------------------------------
# Each message exists twice: as the bytes clamd receives (headers "Name: value\r\n", blank
# line, body) for the direct client, and as a miltertest script sending the same headers/body.
/usr/bin/python3 - "$tmp" <<'PY'
import base64, os, random, sys
tmp = sys.argv[1]
rnd = random.Random(7)
headers = [("From", "Alice <alice@example.org>"), ("To", "bob@example.net"),
           ("Subject", "benchmark message"), ("Date", "Sun, 22 Nov 2026 10:00:00 +0000"),
           ("Message-ID", "<bench@example.org>")]
small_body = "".join("Line %02d of a four kilobyte message body, padded to look like plain prose..\r\n" % i
                     for i in range(1, 57))
blob = bytes(rnd.getrandbits(8) for _ in range(220 * 1024))
b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
mime_headers = headers + [("MIME-Version", "1.0"),
                          ("Content-Type", 'multipart/mixed; boundary="=b1"')]
mime_body = ("--=b1\r\nContent-Type: text/plain\r\n\r\nThe report is attached.\r\n"
             "--=b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
             "Content-Transfer-Encoding: base64\r\n"
             "Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n" + b64 +
             "--=b1--\r\n")
for name, hs, body in (("small", headers, small_body), ("mime", mime_headers, mime_body)):
    raw = "".join("%s: %s\r\n" % h for h in hs) + "\r\n" + body
    open(os.path.join(tmp, name + ".eml"), "wb").write(raw.encode())
    lua = ["local n = tonumber(os.getenv('N'))",
           "conn = mt.connect(os.getenv('SOCKET'), 20, 0.1)",
           "if conn == nil then error('connect failed') end",
           "if mt.conninfo(conn, 'client.example', '192.0.2.1') ~= nil then error('conninfo') end",
           "for i = 1, n do",
           "  if mt.mailfrom(conn, '<alice@example.org>') ~= nil then error('mailfrom') end",
           "  if mt.rcptto(conn, '<bob@example.net>') ~= nil then error('rcpt') end"]
    for k, v in hs:
        lua.append("  if mt.header(conn, [==[%s]==], [==[%s]==]) ~= nil then error('header') end" % (k, v))
    lua.append("  pcall(mt.eoh, conn)")  # clamav-milter negotiates no EOH
    for i in range(0, len(body), 60000):
        lua.append("  if mt.bodystring(conn, [==[%s]==]) ~= nil then error('body') end" % body[i:i + 60000])
    lua += ["  if mt.eom(conn) ~= nil then error('eom') end",
            "  local r = mt.getreply(conn)",
            "  if r ~= SMFIR_ACCEPT and r ~= SMFIR_CONTINUE then error('not accepted: ' .. tostring(r)) end",
            "  if i == 1 then mt.echo('STATUS<<' .. tostring(mt.getheader(conn, 'X-Virus-Status', 0)) .. '>>') end",
            "end",
            "mt.disconnect(conn)"]
    open(os.path.join(tmp, name + ".lua"), "w").write("\n".join(lua) + "\n")
PY

# --- runners ---------------------------------------------------------------------------------
rss_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of the whole process

# $1 = label, $2 = libmilter socket, $3 = pid, $4 = message name; prints one row.
run_milter() {
  local label=$1 socket=$2 pid=$3 msg=$4 start end pids=() rc=0
  SOCKET="$socket" N=20 miltertest -s "$tmp/$msg.lua" >"$tmp/warm.out" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    SOCKET="$socket" N=1 miltertest -v -s "$tmp/$msg.lua" 2>&1 | tail -n 8; tail -n 5 "$tmp"/*.log
    die "$label: warm-up failed (miltertest exit $rc)"
  fi
  local ticks0; ticks0=$(cpu_ticks "$pid")
  start=$(date +%s.%N)
  for i in $(seq "$CLIENTS"); do
    SOCKET="$socket" N="$MESSAGES" miltertest -s "$tmp/$msg.lua" >"$tmp/run.$i.out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { tail -n 5 "$tmp"/run.*.out "$tmp"/*.log; die "$label: run failed"; }; done
  end=$(date +%s.%N)
  local cpu_us; cpu_us=$(echo "($(cpu_ticks "$pid") - $ticks0) * 1000000 / $(getconf CLK_TCK) / ($CLIENTS * $MESSAGES)" | bc -l)
  local status; status=$(grep -o 'STATUS<<[^>]*' "$tmp/run.1.out" | head -1 | sed 's/STATUS<<//')
  printf '%s|%s|%.1f|%.0f|%s MB|%s\n' "$label" "$msg" \
    "$(echo "$CLIENTS * $MESSAGES / ($end - $start)" | bc -l)" "$cpu_us" "$(rss_mb "$pid")" "$status" >>"$tmp/results"
}

run_direct() {  # $1 = message name
  local rate; rate=$(/usr/bin/python3 "$here/av_instream.py" "$tmp/clamd.sock" "$tmp/$1.eml" "$CLIENTS" 20 >/dev/null &&
                     /usr/bin/python3 "$here/av_instream.py" "$tmp/clamd.sock" "$tmp/$1.eml" "$CLIENTS" "$MESSAGES")
  printf '%s|%s|%s|—|—|stream: OK\n' "direct zINSTREAM (no milter)" "$1" "$rate" >>"$tmp/results"
}

start_clamav_milter() {  # $1 = MilterSocket (libmilter syntax); sets $pid
  cat >"$tmp/clamav-milter.conf" <<EOF2
MilterSocket $1
ClamdSocket unix:$tmp/clamd.sock
Foreground yes
User root
PidFile $tmp/clamav-milter.pid
OnInfected Reject
OnFail Defer
AddHeader Replace
LogFile $tmp/clamav-milter.log
EOF2
  /usr/sbin/clamav-milter -c "$tmp/clamav-milter.conf" >"$tmp/clamav-milter.out" 2>&1 &
  pid=$!
  started+=("$pid")
  wait_socket "$1"
}

start_mxguard() {  # $1 = listen (Postfix syntax); sets $pid
  "$AV" --foreground --log-target stderr --log-level warning --listen "$1" \
    --clamd "unix:$tmp/clamd.sock" --skip-networks 127.0.0.1/32 >"$tmp/mxguard.log" 2>&1 &
  pid=$!
  started+=("$pid")
  wait_socket "$1"
}

wait_socket() {
  local s=$1
  for _ in $(seq 100); do
    case $s in
      inet:*@*) p=${s#inet:}; p=${p%@*}; (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && return ;;
      inet:*) (exec 3<>/dev/tcp/127.0.0.1/"${s##*:}") 2>/dev/null && return ;;
      unix:*) [[ -S ${s#unix:} ]] && return ;;
    esac
    sleep 0.1
  done
  die "nothing listens on $s"
}
stop() { kill -TERM "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

echo "clamd $(/usr/sbin/clamd --version | cut -d/ -f1), clamav-milter $(/usr/sbin/clamav-milter --version | awk '{print $NF}'), mxguard-av $("$AV" --version | awk '{print $2}')"
echo "$CLIENTS concurrent clients x $MESSAGES messages each, $(nproc) cores; small = 4 KiB text, mime = $(( $(stat -c %s "$tmp/mime.eml") / 1024 )) KiB with a base64 attachment"
echo
for msg in small mime; do
  for r in $(seq "$REPEAT"); do
    run_direct "$msg"
    start_clamav_milter "unix:$tmp/cm.sock"
    run_milter "clamav-milter (unix)" "unix:$tmp/cm.sock" "$pid" "$msg"
    stop
    start_mxguard "unix:$tmp/mx.sock"
    run_milter "mxguard-av (unix)" "unix:$tmp/mx.sock" "$pid" "$msg"
    stop
    if [[ $r == 1 ]]; then  # ~45 msgs/s (the Nagle stall): once is enough
      p=$(free_port)
      start_clamav_milter "inet:$p@127.0.0.1"
      run_milter "clamav-milter (inet)" "inet:$p@127.0.0.1" "$pid" "$msg"
      stop
    fi
    p=$(free_port)
    start_mxguard "inet:127.0.0.1:$p"
    run_milter "mxguard-av (inet)" "inet:$p@127.0.0.1" "$pid" "$msg"
    stop
  done
done
# One row per run kind: median msgs/s (min–max over the repeats), median CPU, largest RSS.
/usr/bin/python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, msg, rate, cpu, rss, status = line.rstrip("\n").split("|")
    rows.setdefault((label, msg), []).append((float(rate), cpu, rss, status))
print("| run | msg | msgs/s median (min–max) | milter CPU µs/msg | peak RSS | X-Virus-Status |")
print("|---|---|---:|---:|---:|---|")
for (label, msg), runs in rows.items():
    rates = [r[0] for r in runs]
    cpus = [float(r[1]) for r in runs if r[1] != "—"]
    cpu = "%.0f" % statistics.median(cpus) if cpus else "—"
    rss = max((r[2] for r in runs), key=lambda x: float(x.split()[0]) if x != "—" else 0)
    spread = " (%.0f–%.0f)" % (min(rates), max(rates)) if len(rates) > 1 else ""
    print("| %s | %s | %.0f%s | %s | %s | %s |" % (label, msg, statistics.median(rates), spread, cpu, rss, runs[0][3]))
PY
echo
echo "clamd peak RSS: $(rss_mb "$clamd_pid") MB"
