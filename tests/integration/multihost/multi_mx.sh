#!/usr/bin/env bash
# Several MX hosts sharing one highly available Redis, proved with network namespaces:
# three "MX hosts" (namespaces mxa/mxb/mxc, 198.18.0.11-13) each run mxguard-policyd; a fourth
# ("store", 198.18.0.1) runs a Redis master, a replica and three Redis Sentinels (quorum 2).
# Every policyd reaches Redis only through --redis-url=sentinel://…
#   1. a triplet deferred on A passes on B after the greylist delay (shared state);
#   2. a whitelist entry added with mxguard-grey on C holds on A and B;
#   3. failover under load: mxguard-policy-load drives A while the master is SIGKILLed; Sentinel
#      promotes the replica; we report requests that failed open (A's store-error counter), the
#      time until a new triplet is greylisted again (decisions shared again) and requests left
#      unanswered by the load generator (must be 0);
#   4. the old master comes back, Sentinel turns it into a replica, and all three hosts still
#      decide through the new master;
#   5. each host also runs mxguard-dmarc (same Sentinel URL, a DNS server in the store
#      namespace); mail is fed to each with miltertest before step 1, and after the report
#      period (1 minute) has ended, ONE mxguard-dmarc-report run on A writes ONE aggregate report
#      for the domain whose rows count the mail seen by all three hosts, across the failover.
# Needs root and network namespaces (ip netns); prints SKIPPED and exits 77 otherwise (ctest
# counts that as skipped). Everything runs in namespaces it creates, named with this pid; it
# stops exactly the pids it started and deletes its namespaces and links on any exit.
# Usage: multi_mx.sh BUILD_DIR
set -euo pipefail

build=$(cd "${1:?usage: multi_mx.sh BUILD_DIR}" && pwd)
policyd=$build/policyd/mxguard-policyd
dmarc=$build/milters/dmarc/mxguard-dmarc
dmarc_report=$build/milters/dmarc/mxguard-dmarc-report
dns_server=$(cd "$(dirname "$0")/../../fixtures" && pwd)/dns_server.py
grey=$build/policyd/mxguard-grey
load=$build/tests/bench/mxguard-policy-load
id=$(( $$ % 100000 ))
store=mxg$id-s
hosts=(a b c)
tmp=$(mktemp -d /tmp/mxguard-multimx.XXXXXX)
pids=()
failures=0

log() { printf '== %s\n' "$*"; }
check() {  # check NAME CONDITION-COMMAND...
  local name=$1
  shift
  if "$@"; then
    printf 'ok   %s\n' "$name"
  else
    printf 'FAIL %s\n' "$name"
    failures=$((failures + 1))
  fi
}

skip() {
  printf 'SKIPPED: %s\n' "$*"
  rm -rf "$tmp"
  exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "no ip (iproute2)"
for b in "$policyd" "$grey" "$load" "$dmarc" "$dmarc_report" /usr/bin/redis-server \
  /usr/bin/redis-cli /usr/bin/miltertest; do
  [ -x "$b" ] || skip "missing $b"
done
if ! ip netns add "mxg$id-probe" 2>/dev/null; then
  skip "cannot create network namespaces here"
fi
# `ip netns exec` also needs to remount / and /sys in a mount namespace of its own, which a
# chroot whose / is not a mount point (tests/fresh-machine.sh) does not allow.
if ! ip netns exec "mxg$id-probe" true 2>/dev/null; then
  ip netns del "mxg$id-probe"
  skip "cannot enter network namespaces here (ip netns exec)"
fi
ip netns del "mxg$id-probe"

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for h in "${hosts[@]}"; do ip netns del "mxg$id-$h" 2>/dev/null || true; done
  ip netns del "$store" 2>/dev/null || true
  if [ "$failures" != 0 ]; then
    echo "logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
start() {  # start NS LOG CMD...: background in a namespace, pid remembered
  local ns=$1 logfile=$2
  shift 2
  ip netns exec "$ns" "$@" >"$logfile" 2>&1 &
  pids+=($!)
}

# --- network: a bridge in the store namespace, one veth pair per MX host ---
ip netns add "$store"
in_ns "$store" ip link set lo up
in_ns "$store" ip link add br0 type bridge
in_ns "$store" ip addr add 198.18.0.1/24 dev br0
in_ns "$store" ip link set br0 up
n=11
for h in "${hosts[@]}"; do
  ns=mxg$id-$h
  ip netns add "$ns"
  in_ns "$ns" ip link set lo up
  ip link add "m$id$h" type veth peer name "s$id$h"
  ip link set "m$id$h" netns "$ns"
  ip link set "s$id$h" netns "$store"
  in_ns "$ns" ip addr add "198.18.0.$n/24" dev "m$id$h"
  in_ns "$ns" ip link set "m$id$h" up
  in_ns "$store" ip link set "s$id$h" master br0
  in_ns "$store" ip link set "s$id$h" up
  n=$((n + 1))
done

# --- the store: master 6379, replica 6380, sentinels 26379-26381 ---
redis_conf() {  # redis_conf PORT [replicaof-line]
  mkdir -p "$tmp/redis-$1"
  printf 'bind 198.18.0.1\nport %s\ndir %s\nsave ""\nappendonly no\ndaemonize no\nlogfile ""\nprotected-mode no\n%s' \
    "$1" "$tmp/redis-$1" "${2:-}" >"$tmp/redis-$1/redis.conf"
}
redis_conf 6379
redis_conf 6380 "replicaof 198.18.0.1 6379"$'\n'
start "$store" "$tmp/redis-6379.log" redis-server "$tmp/redis-6379/redis.conf"
master_pid=${pids[-1]}
start "$store" "$tmp/redis-6380.log" redis-server "$tmp/redis-6380/redis.conf"
for p in 26379 26380 26381; do
  mkdir -p "$tmp/sentinel-$p"
  printf 'bind 198.18.0.1\nport %s\ndir %s\ndaemonize no\nlogfile ""\nprotected-mode no\nsentinel monitor mxg 198.18.0.1 6379 2\nsentinel down-after-milliseconds mxg 1000\nsentinel failover-timeout mxg 5000\nsentinel parallel-syncs mxg 1\n' \
    "$p" "$tmp/sentinel-$p" >"$tmp/sentinel-$p/sentinel.conf"
  start "$store" "$tmp/sentinel-$p.log" redis-server "$tmp/sentinel-$p/sentinel.conf" --sentinel
done
rcli() { in_ns "$store" redis-cli -h 198.18.0.1 "$@"; }
log "waiting for the replica to sync and every sentinel to know it"
ready=0
for _ in $(seq 300); do
  if rcli -p 6380 INFO replication 2>/dev/null | grep -q master_link_status:up &&
    [ "$(rcli -p 26379 SENTINEL replicas mxg 2>/dev/null | grep -c 6380)" -ge 1 ] &&
    [ "$(rcli -p 26380 SENTINEL replicas mxg 2>/dev/null | grep -c 6380)" -ge 1 ] &&
    [ "$(rcli -p 26381 SENTINEL replicas mxg 2>/dev/null | grep -c 6380)" -ge 1 ]; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || { echo "store did not come up"; failures=1; exit 1; }

# --- one mxguard-policyd per MX host ---
url="sentinel://198.18.0.1:26379,198.18.0.1:26380,198.18.0.1:26381/mxg/0"
cat >"$tmp/policyd.conf" <<CONF
redis-url = $url
redis-timeout = 300ms
greylist-delay = 2s
greylist-whitelist-clients = /dev/null
greylist-whitelist-recipients = /dev/null
greylist-hostname = mx.test
log-target = stderr
CONF
for h in "${hosts[@]}"; do
  start "mxg$id-$h" "$tmp/policyd-$h.log" "$policyd" -c "$tmp/policyd.conf" --foreground \
    --listen inet:127.0.0.1:10040 --metrics-listen inet:127.0.0.1:9100
done
for h in "${hosts[@]}"; do
  for _ in $(seq 100); do
    in_ns "mxg$id-$h" bash -c 'exec 3<>/dev/tcp/127.0.0.1/10040' 2>/dev/null && break
    sleep 0.1
  done
done

ask() {  # ask HOST CLIENT-IP SENDER RECIPIENT -> the action
  in_ns "mxg$id-$1" bash -c '
    exec 3<>/dev/tcp/127.0.0.1/10040
    printf "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=%s\nclient_name=unknown\nsender=%s\nrecipient=%s\ninstance=%s\n\n" "$1" "$2" "$3" "$RANDOM$RANDOM$RANDOM" >&3
    read -r line <&3
    printf "%s\n" "${line#action=}"' _ "$2" "$3" "$4"
}
metric() {  # metric HOST NAME -> summed value of every series of NAME
  in_ns "mxg$id-$1" bash -c '
    exec 3<>/dev/tcp/127.0.0.1/9100
    printf "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n" >&3
    cat <&3' | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }'
}
deferred() { case $1 in DEFER_IF_PERMIT*) return 0 ;; *) return 1 ;; esac; }

# --- mxguard-dmarc on every host; a DNS server for its zones in the store namespace ---
cat >"$tmp/zone" <<'ZONE'
$ORIGIN test.
$TTL 60
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
_dmarc.author IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-agg@author.test"
ZONE
start "$store" "$tmp/dns.log" /usr/bin/python3 "$dns_server" --zone "$tmp/zone" \
  --port-file "$tmp/dns.port" --address 198.18.0.1 --port 53
cat >"$tmp/dmarc.conf" <<CONF
redis-url = $url
redis-timeout = 300ms
dns-servers = 198.18.0.1@53
authserv-id = mx.test
trusted-networks = 127.0.0.1/32
spf-self-check = no
report-interval = 1m
report-delay = 1s
report-org-name = mxguard multi-MX test
report-email = dmarc-noreply@mx.test
log-target = stderr
CONF
for h in "${hosts[@]}"; do
  start "mxg$id-$h" "$tmp/dmarc-$h.log" "$dmarc" -c "$tmp/dmarc.conf" --foreground \
    --listen inet:127.0.0.1:8893 --metrics-listen inet:127.0.0.1:9101
done
for _ in $(seq 100); do [ -s "$tmp/dns.port" ] && break; sleep 0.1; done
for h in "${hosts[@]}"; do
  for _ in $(seq 100); do
    in_ns "mxg$id-$h" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8893' 2>/dev/null && break
    sleep 0.1
  done
done
mail_to_dmarc() {  # mail_to_dmarc HOST CLIENT-IP: one message From: x@author.test, unsigned
  cat >"$tmp/mt-$1-$2.lua" <<LUA
conn = mt.connect("inet:8893@127.0.0.1", 20, 0.1)
if conn == nil then error("connect") end
if mt.conninfo(conn, "relay.sender.test", "$2") ~= nil then error("conninfo") end
if mt.helo(conn, "relay.sender.test") ~= nil then error("helo") end
if mt.mailfrom(conn, "<bounce@sender.test>") ~= nil then error("mailfrom") end
mt.header(conn, "From", "ceo@author.test")
mt.header(conn, "Subject", "multi-MX DMARC")
mt.eoh(conn)
mt.eom(conn)
if mt.getreply(conn) ~= SMFIR_ACCEPT and mt.getreply(conn) ~= SMFIR_CONTINUE then
  error("not accepted")
end
mt.disconnect(conn)
LUA
  in_ns "mxg$id-$1" miltertest -s "$tmp/mt-$1-$2.lua" >>"$tmp/miltertest.log" 2>&1
}
log "0. mail through mxguard-dmarc on each host (counted into the shared aggregate data)"
dmarc_period=$(( $(date +%s) / 60 * 60 ))
mt_ok=1
mail_to_dmarc a 198.51.100.71 || mt_ok=0
mail_to_dmarc a 198.51.100.71 || mt_ok=0
mail_to_dmarc b 198.51.100.72 || mt_ok=0
mail_to_dmarc c 198.51.100.73 || mt_ok=0
check "mxguard-dmarc on A, B and C accepted the p=none mail" test "$mt_ok" = 1
for h in "${hosts[@]}"; do
  check "$h logged its DMARC decision" grep -q "dmarc=fail .*from=author.test" "$tmp/dmarc-$h.log"
done

# --- 1. shared greylisting state ---
log "1. a triplet deferred on A passes on B after the delay"
first=$(ask a 198.51.100.10 alice@sender.example bob@rcpt.example)
check "A defers a new triplet ($first)" deferred "$first"
early=$(ask b 198.51.100.10 alice@sender.example bob@rcpt.example)
check "B defers the same triplet before the delay ($early)" deferred "$early"
sleep 2.5
later=$(ask b 198.51.100.10 alice@sender.example bob@rcpt.example)
check "B passes it after the delay ($later)" bash -c "! case '$later' in DEFER*) true;; *) false;; esac"
check "C passes it too" bash -c "! case '$(ask c 198.51.100.10 alice@sender.example bob@rcpt.example)' in DEFER*) true;; *) false;; esac"

# --- 2. one admin's whitelist holds everywhere ---
log "2. mxguard-grey on C whitelists a client; A and B honour it"
grey_rc=0
in_ns "mxg$id-c" "$grey" -c "$tmp/policyd.conf" whitelist add client 203.0.113.0/24 >"$tmp/grey.log" 2>&1 ||
  grey_rc=$?
check "mxguard-grey on C succeeded" test "$grey_rc" = 0
sleep 10.5  # policyd re-reads the admin whitelist at most every 10 s
wa=$(ask a 203.0.113.5 new@sender.example x@rcpt.example)
wb=$(ask b 203.0.113.6 new@sender.example y@rcpt.example)
check "A passes a whitelisted client at once ($wa)" test "$wa" = DUNNO
check "B passes a whitelisted client at once ($wb)" test "$wb" = DUNNO

# --- 3. failover under load ---
log "3. failover under load: SIGKILL the master while A is under load"
errors_before=$(metric a mxguard_greylist_store_errors_total)
in_ns "mxg$id-a" "$load" --target inet:127.0.0.1:10040 --connections 8 --duration 15 \
  --new-ratio 0.5 --pool 500 --json >"$tmp/load.json" 2>"$tmp/load.err" &
load_pid=$!
pids+=("$load_pid")
sleep 3
{ kill -9 "$master_pid" && wait "$master_pid"; } 2>/dev/null || true
killed=$(date +%s%N)
shared_again=""
for _ in $(seq 600); do
  r=$(ask b "198.51.100.$((RANDOM % 200 + 20))" "f$RANDOM@sender.example" "t$RANDOM@rcpt.example" || true)
  if deferred "$r"; then
    shared_again=$(( ($(date +%s%N) - killed) / 1000000 ))
    break
  fi
  sleep 0.05
done
wait "$load_pid" || true
errors_after=$(metric a mxguard_greylist_store_errors_total)
failed_open=$((errors_after - errors_before))
unanswered=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["errors"])' "$tmp/load.json" 2>/dev/null || echo "?")
measured=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"], round(d["requests_per_s"]))' "$tmp/load.json" 2>/dev/null || echo "? ?")
new_master=$(rcli -p 26379 SENTINEL get-master-addr-by-name mxg | tr '\n' ':' | sed 's/:$//')
printf 'failover: %s requests measured on A (%s req/s); %s failed open; %s unanswered; decisions shared again %s ms after the kill; master now %s\n' \
  "${measured% *}" "${measured#* }" "$failed_open" "$unanswered" "${shared_again:-never}" "$new_master"
check "decisions are shared again after the failover" test -n "$shared_again"
check "no request left unanswered by A during the failover" test "$unanswered" = 0
check "Sentinel promoted the replica" test "$new_master" = 198.18.0.1:6380
check "the fail-open window stayed under 15 s" test "${shared_again:-99999}" -lt 15000
check "A logged the failover" grep -q "moved from 198.18.0.1:6379 to 198.18.0.1:6380" "$tmp/policyd-a.log"

# --- 4. the old master returns as a replica ---
log "4. the old master comes back; Sentinel makes it a replica; nothing breaks"
start "$store" "$tmp/redis-6379-again.log" redis-server "$tmp/redis-6379/redis.conf"
role=""
for _ in $(seq 300); do
  role=$(rcli -p 6379 ROLE 2>/dev/null | head -1 || true)
  [ "$role" = slave ] && break
  sleep 0.1
done
check "the old master is a replica now ($role)" test "$role" = slave
for h in "${hosts[@]}"; do
  r=$(ask "$h" "198.51.100.$((RANDOM % 200 + 20))" "late$RANDOM@sender.example" "z@rcpt.example")
  check "$h greylists through the new master ($r)" deferred "$r"
done

# --- 5. one aggregate report covers the mail seen by all three hosts ---
log "5. mxguard-dmarc-report on A, after the report period: one report, rows from A, B and C"
now=$(date +%s)
period_end=$((dmarc_period + 60))
[ "$now" -ge $((period_end + 2)) ] || sleep $((period_end + 2 - now))
mkdir -p "$tmp/reports"
report_rc=0
in_ns "mxg$id-a" "$dmarc_report" -c "$tmp/dmarc.conf" --dry-run "$tmp/reports" \
  >"$tmp/dmarc-report.log" 2>&1 || report_rc=$?
check "mxguard-dmarc-report on A succeeded" test "$report_rc" = 0
reports=("$tmp"/reports/*author.test*.xml.gz)
check "exactly one report for author.test (${#reports[@]})" test "${#reports[@]}" = 1 -a -f "${reports[0]}"
if [ -f "${reports[0]}" ]; then
  zcat "${reports[0]}" >"$tmp/report.xml"
  row_count() {  # row_count IP -> the <count> of that source's row
    /usr/bin/python3 - "$tmp/report.xml" "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
print(sum(int(r.findtext("row/count")) for r in root.iter("record")
          if r.findtext("row/source_ip") == sys.argv[2]))
PY
  }
  printf 'aggregate report %s: rows 198.51.100.71=%s 198.51.100.72=%s 198.51.100.73=%s\n' \
    "$(basename "${reports[0]}")" "$(row_count 198.51.100.71)" "$(row_count 198.51.100.72)" \
    "$(row_count 198.51.100.73)"
  check "the report counts A's two messages" test "$(row_count 198.51.100.71)" = 2
  check "the report counts B's message" test "$(row_count 198.51.100.72)" = 1
  check "the report counts C's message" test "$(row_count 198.51.100.73)" = 1
  check "the report is for p=none author.test" grep -q "<domain>author.test</domain>" "$tmp/report.xml"
fi

if [ "$failures" != 0 ]; then
  echo "multi_mx: $failures check(s) failed"
  exit 1
fi
echo "multi_mx: all checks passed"
