#!/usr/bin/env bash
# stack_compare.sh: the whole filtering stack behind one private Postfix, under the same load, in
# one run (issue 9). Profiles (PROFILES, default all five, in this order):
#   postfix  Postfix alone: no milter, no policy service (the ceiling)
#   mxguard  mxguard-policyd (checks = spf, greylist) at RCPT + milters mxguard-dkim,
#            mxguard-dmarc, mxguard-av; one private Redis
#   mxguard-milter  the same, with the three filters in one mxguard-milter (one milter
#            connection per SMTP session; issue 17), on libmilter
#   mxguard-engine  the same mxguard-milter on our own milter engine (milter-engine = mxguard)
#   mxguard-sep-engine  the separate daemons, each on our own milter engine
#   classic  postfix-policyd-spf-python (spawn(8), as its README says) + postgrey at RCPT,
#            milters opendkim, opendmarc, clamav-milter (Debian packages)
#   rspamd   rspamd (Debian 3.4) proxy worker in milter mode → normal worker: dkim, dmarc, spf,
#            greylist (Redis), antivirus (clamav) — no other module, no stock rule set
# OpenDKIM alone reads the DKIM key from a file (TestPublicKeys): see start_classic for why.
# Load: smtp-source, SESSIONS (20) concurrent sessions, MESSAGES (2000) messages of one 4 KiB
# message file (-F), DKIM-signed in advance by python3-dkim (relaxed/relaxed, rsa-sha256,
# sender.test), envelope alice@sender.test → bob@dest.test, one message per SMTP session (as
# an MX sees it). The zone gives sender.test SPF "ip4:127.0.0.1 -all", the DKIM key and DMARC
# p=reject, so every check passes and every message must reach the sink.
# Greylisting runs for every message: the one triplet is primed (one message deferred, wait
# GREY_DELAY+1 s) before the measured run, nobody is whitelisted and auto-whitelisting is off.
# smtp-source connects from 127.0.0.1, so every tool is told that 127.0.0.1 is external
# (trusted/internal/skip networks = 127.0.0.9/32, rspamd local_addrs = []).
# Wall time: start of smtp-source until the Postfix log shows MESSAGES deliveries to the sink
# (Postfix's own smtp-sink on a port). Per-message time: a probe client alongside the load
# sends one message per session, sequentially, and times connect → QUIT (Postfix's maillog has
# whole seconds only). CPU: utime+stime (+ reaped children) of each daemon's process group from
# /proc before/after; peak RSS: VmHWM summed over the group's processes (shared pages counted
# in each), and Pss at the end. Classic: policyd-spf runs under Postfix's spawn(8) in sessions
# of its own and is counted apart from Postfix. NO_AV=1 leaves clamd and every antivirus
# part out of all profiles.
#
# Everything runs in a private network and mount namespace (unshare, as root): /etc/resolv.conf
# is bind-mounted to point at tests/fixtures/dns_server.py on 127.0.0.1:53 (OpenDMARC and
# policyd-spf read only resolv.conf), fixed loopback ports are free by construction, and no
# system service or system config is used. Everything started is stopped by pid on exit.
#
# Usage: tests/bench/stack_compare.sh   (BUILD_DIR, MESSAGES [2000], SESSIONS [20], NO_AV,
#        PROFILES ["postfix mxguard mxguard-sep-engine mxguard-milter mxguard-engine classic rspamd"], GREY_DELAY [1], WARMUP [100],
#        CHECK=1 shows added headers + sends EICAR, RSPAMD_LOG_LEVEL [warning], KEEP=1 keeps tmp,
#        MILTER_THREADS [16]: milter-threads of the own-engine profiles,
#        MILTER_SOCKETS [unix]: unix = each milter on a unix socket, as Debian's opendkim,
#        opendmarc and clamav-milter packages and mxguard-setup configure them; inet = loopback
#        TCP for every milter (rspamd's proxy listens on TCP in both, its Debian default))
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-20}
NO_AV=${NO_AV:-}
PROFILES=${PROFILES:-postfix mxguard mxguard-sep-engine mxguard-milter mxguard-engine classic rspamd}
GREY_DELAY=${GREY_DELAY:-1}
WARMUP=${WARMUP:-100}
MILTER_SOCKETS=${MILTER_SOCKETS:-unix}
[[ $MILTER_SOCKETS == unix || $MILTER_SOCKETS == inet ]] || { echo "MILTER_SOCKETS: unix or inet" >&2; exit 64; }

die() { printf 'stack_compare: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (private namespaces, Postfix master)"
# The comparison peers (Debian packages), installed without starting their services.
if [[ -z ${MXGUARD_BENCH_NS:-} ]]; then
  bash "$(dirname "$0")/../install-deps.sh" --bench >/dev/null || die "installing the comparison peers failed"
fi
if [[ -z ${MXGUARD_BENCH_NS:-} ]]; then
  exec env MXGUARD_BENCH_NS=1 unshare --net --mount --fork -- "$0" "$@"
fi
ip link set lo up

tmp=$(mktemp -d /tmp/mxguard-stackbench.XXXXXX)
chmod 755 "$tmp"
started=()
cleanup() {
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${started[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [[ -n ${KEEP:-} ]] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
wait_port() {  # port [what]
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  die "nothing on port $1 (${2:-})"
}
wait_file() { for _ in $(seq 200); do [[ -e $1 ]] && return 0; sleep 0.1; done; die "no $1"; }
# A milter's address, NAME and TCP PORT, in the MILTER_SOCKETS form: ours (Postfix syntax),
# libmilter's (OpenDKIM, OpenDMARC, clamav-milter) and Postfix's smtpd_milters entry. Unix
# sockets live in a setgid directory of group postfix, so Postfix's processes may connect.
sock_dir() { mkdir -p "$tmp/sock"; chown root:postfix "$tmp/sock"; chmod 2770 "$tmp/sock"; }
mx_listen() { [[ $MILTER_SOCKETS == unix ]] && echo "unix:$tmp/sock/$1.sock" || echo "inet:127.0.0.1:$2"; }
lm_listen() { [[ $MILTER_SOCKETS == unix ]] && echo "local:$tmp/sock/$1.sock" || echo "inet:$2@127.0.0.1"; }
pf_milter() { [[ $MILTER_SOCKETS == unix ]] && echo "unix:$tmp/sock/$1.sock" || echo "inet:127.0.0.1:$2"; }
wait_milter() {  # name port
  if [[ $MILTER_SOCKETS == unix ]]; then wait_file "$tmp/sock/$1.sock"; else wait_port "$2" "$1"; fi
}
# Starts a daemon in its own process group (setsid: pgid = pid); "$name" → pid in daemon_pid.
declare -A daemon_pid
spawn() {  # name logfile command...
  local name=$1 logf=$2; shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  daemon_pid[$name]=$!
  started+=($!)
}
stop_daemons() {
  local name
  for name in "${!daemon_pid[@]}"; do
    [[ $name == clamd || $name == redis || $name == sink ]] && continue
    kill -TERM "${daemon_pid[$name]}" 2>/dev/null || true
  done
  sleep 0.5
  for name in "${!daemon_pid[@]}"; do
    [[ $name == clamd || $name == redis || $name == sink ]] && continue
    kill -KILL -- "-${daemon_pid[$name]}" 2>/dev/null || true
    wait "${daemon_pid[$name]}" 2>/dev/null || true
    unset "daemon_pid[$name]"
  done
}
# procstat PGID [COMM]: "ticks hwm_kb nprocs" over the process group (only processes named
# COMM, plus reaped-children time of its "spawn" parents, when COMM is given).
procstat() {
  /usr/bin/python3 - "$@" <<'PY'
import os, sys
pg = int(sys.argv[1]); comm = sys.argv[2] if len(sys.argv) > 2 else None
ticks = hwm = pss = n = 0
for p in os.listdir("/proc"):
    if not p.isdigit(): continue
    try:
        st = open(f"/proc/{p}/stat").read()
        status = open(f"/proc/{p}/status").read()
    except OSError:
        continue
    name = st[st.index("(") + 1:st.rindex(")")]
    f = st[st.rindex(")") + 2:].split()
    if f[0] in "ZX": continue
    if comm and name == comm:  # policyd-spf runs in a session of its own: match our config
        try:
            if sys.argv[3].encode() not in open(f"/proc/{p}/cmdline", "rb").read(): continue
        except OSError:
            continue
    elif int(f[2]) != pg: continue
    if comm and name == "spawn":
        ticks += int(f[13]) + int(f[14])  # cutime + cstime: the policy children it reaped
        continue
    if comm and name != comm: continue
    ticks += int(f[11]) + int(f[12]) + (0 if comm else int(f[13]) + int(f[14]))
    for line in status.splitlines():
        if line.startswith("VmHWM:"): hwm += int(line.split()[1])
    try:  # proportional set size now: shared pages split between their users
        for line in open(f"/proc/{p}/smaps_rollup"):
            if line.startswith("Pss:"): pss += int(line.split()[1])
    except OSError:
        pass
    n += 1
print(ticks, hwm, n, pss)
PY
}

# ---- DNS, keys, message -------------------------------------------------------------------
keygen=$BUILD_DIR/milters/dkim/mxguard-keygen
if [[ -x $keygen ]]; then
  keyrec=$("$keygen" --domain sender.test --selector s1 --dir "$tmp" | grep -o 'v=DKIM1.*' | head -n1)
else
  openssl genrsa -out "$tmp/s1.private" 2048 2>/dev/null
  keyrec="v=DKIM1; k=rsa; p=$(openssl rsa -in "$tmp/s1.private" -pubout -outform DER 2>/dev/null | base64 -w0)"
fi
keyrec=${keyrec%\"}
txt() { local out="$1 IN TXT" r=$2 i; for ((i = 0; i < ${#r}; i += 200)); do out+=" \"${r:i:200}\""; done; echo "$out"; }
{
  cat <<'EOF'
$ORIGIN test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
sender IN TXT "v=spf1 ip4:127.0.0.1 -all"
sender IN A 127.0.0.1
sender IN MX 10 sender
_dmarc.sender IN TXT "v=DMARC1; p=reject"
dest IN A 127.0.0.1
EOF
  txt s1._domainkey.sender "$keyrec"
} >"$tmp/zone"
/usr/bin/python3 "$repo/tests/fixtures/dns_server.py" --zone "$tmp/zone" --port 53 \
  --port-file "$tmp/dns.port" >"$tmp/dns.log" 2>&1 </dev/null &
started+=($!)
wait_file "$tmp/dns.port"
echo "nameserver 127.0.0.1" >"$tmp/resolv.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf
echo "127.0.0.1 localhost mx.bench.test" >"$tmp/hosts"
mount --bind "$tmp/hosts" /etc/hosts

/usr/bin/python3 - "$tmp/msg.raw" <<'PY'
import sys
lines = ["From: Alice <alice@sender.test>", "To: Bob <bob@dest.test>",
         "Subject: stack benchmark message", "Date: Sun, 22 Nov 2026 10:00:00 +0000",
         "Message-ID: <stackbench@sender.test>", "MIME-Version: 1.0",
         "Content-Type: text/plain; charset=us-ascii", ""]
body, i = [], 0
while sum(len(l) + 2 for l in body) < 4096:
    body.append(f"line {i:04d} of the benchmark body: the quick brown fox jumps over the lazy dog")
    i += 1
open(sys.argv[1], "w").write("\r\n".join(lines + body) + "\r\n")
PY
/usr/bin/python3 "$repo/tests/fixtures/dkim_tool.py" sign "$tmp/msg.raw" "$tmp/s1.private" s1 \
  sender.test rsa >"$tmp/msg.signed"
tr -d '\r' <"$tmp/msg.signed" >"$tmp/msg.eml"  # smtp-source -F appends CRLF to each line
echo "s1._domainkey.sender.test $keyrec" >"$tmp/keys.txt"
/usr/bin/python3 "$repo/tests/fixtures/dkim_tool.py" verify "$tmp/msg.signed" "$tmp/keys.txt" \
  >/dev/null || die "the pre-signed message does not verify"

# ---- shared back ends: Redis, clamd -------------------------------------------------------
spawn redis "$tmp/redis.log" redis-server --bind 127.0.0.1 --port 6390 --save '' \
  --appendonly no --dir "$tmp"
wait_port 6390 redis
clamd_sock=$tmp/clamd.sock
if [[ -z $NO_AV ]]; then
  mkdir -p "$tmp/clamdb"
  # The tiny database of tests/fixtures/clamd_server.cc: one body signature for EICAR.
  eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
  echo "Mxguard.Test.EICAR:0:*:$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" \
    >"$tmp/clamdb/mxguard-test.ndb"
  cat >"$tmp/clamd.conf" <<EOF
Foreground yes
LocalSocket $clamd_sock
LocalSocketMode 666
DatabaseDirectory $tmp/clamdb
PidFile $tmp/clamd.pid
StreamMaxLength 25M
MaxThreads 4
SelfCheck 0
User root
EOF
  spawn clamd "$tmp/clamd.log" clamd -c "$tmp/clamd.conf"
  wait_file "$clamd_sock"
fi

# ---- Postfix --------------------------------------------------------------------------------
SMTP_PORT=2525 SINK_PORT=2526
# CHECK=1: the sink keeps every message (one dump file per profile) and the headers the filters
# added to the last one are printed, to see that every check ran; off for the figures.
sink_dump=()
[[ -n ${CHECK:-} ]] && { mkdir -p "$tmp/sink"; chmod 777 "$tmp/sink"; sink_dump=(-D "$tmp/sink/dump"); }
spawn sink "$tmp/sink.log" /usr/sbin/smtp-sink "${sink_dump[@]}" -u postfix 127.0.0.1:$SINK_PORT 256
wait_port $SINK_PORT sink
pf_start() {  # profile; restrictions and milters come from pf_rcpt, pf_milters, pf_extra
  local d=$tmp/postfix-$1
  pf_dir=$d
  mkdir -p "$d/etc" "$d/queue"
  cat >"$d/etc/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $d/etc
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.9/32
relay_domains = static:ALL
transport_maps = static:smtp:[127.0.0.1]:$SINK_PORT
smtp_host_lookup = native
disable_dns_lookups = yes
smtpd_peername_lookup = no
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = ${pf_rcpt:-}
smtpd_milters = ${pf_milters:-}
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 5s
milter_command_timeout = 60s
milter_content_timeout = 120s
maillog_file = $d/maillog
maillog_file_prefixes = $tmp
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 10000
smtpd_hard_error_limit = 10000
in_flow_delay = 0
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
${pf_extra:-}
EOF
  cat >"$d/etc/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
${pf_master_extra:-}
EOF
  touch -d '-1 min' "$d/etc/main.cf" "$d/etc/master.cf"
  /usr/sbin/postfix -c "$d/etc" check >"$d/check.log" 2>&1 || { cat "$d/check.log"; die "postfix check"; }
  spawn postfix "$d/master.log" /usr/lib/postfix/sbin/master -c "$d/etc" -d
  wait_port $SMTP_PORT postfix
}
sent() { grep -c ' status=sent ' "$pf_dir/maillog" 2>/dev/null || true; }
wait_sent() {  # count timeout_s
  local deadline=$((SECONDS + $2))
  while (($(sent) < $1)); do
    ((SECONDS < deadline)) || { tail -n 20 "$pf_dir/maillog" >&2; die "only $(sent) of $1 delivered"; }
    sleep 0.05
  done
}
source_cmd=(/usr/sbin/smtp-source -s "$SESSIONS" -F "$tmp/msg.eml" -f alice@sender.test
            -t bob@dest.test -M mail.sender.test)

# ---- profiles -----------------------------------------------------------------------------
start_postfix_alone() { pf_rcpt='' pf_milters='' pf_extra='' pf_master_extra='' pf_start postfix; }

MXBIN=$BUILD_DIR
start_mxguard() {  # [combined] [ENGINE]: combined = the three filters in one mxguard-milter
  local combined=${1:-} engine=${2:-libmilter}
  local dns="dns-servers = 127.0.0.1@53
dns-timeout = 2s"
  cat >"$tmp/policyd.conf" <<EOF
listen = inet:127.0.0.1:10023
$dns
redis-url = redis://127.0.0.1:6390/0
checks = spf, greylist
trusted-networks = 127.0.0.9/32
spf-skip-addresses = 127.0.0.9/32
greylist-delay = ${GREY_DELAY}s
greylist-auto-whitelist-clients = 0
greylist-whitelist-clients = /dev/null
greylist-whitelist-recipients = /dev/null
greylist-hostname = mx.bench.test
authserv-id = mx.bench.test
EOF
  sock_dir
  local eng="milter-engine = $engine
milter-threads = ${MILTER_THREADS:-16}"
  cat >"$tmp/dkim.conf" <<EOF
listen = $(mx_listen mxguard-dkim 8891)
$dns
authserv-id = mx.bench.test
domain = bench.test
selector = s1
key-file = $tmp/s1.private
internal-hosts = 127.0.0.9
$eng
EOF
  cat >"$tmp/dmarc.conf" <<EOF
listen = $(mx_listen mxguard-dmarc 8893)
$dns
authserv-id = mx.bench.test
trusted-networks = 127.0.0.9/32
redis-url = redis://127.0.0.1:6390/0
$eng
EOF
  cat >"$tmp/av.conf" <<EOF
listen = $(mx_listen mxguard-av 8895)
clamd = unix:$clamd_sock
skip-networks = 127.0.0.9/32
scan-timeout = 30s
header-host = mx.bench.test
$eng
EOF
  spawn mxguard-policyd "$tmp/mx-policyd.log" "$MXBIN/policyd/mxguard-policyd" --foreground \
    --log-target stderr --log-level warning -c "$tmp/policyd.conf"
  local milters
  if [[ -n $combined ]]; then
    local chain="dkim, dmarc"
    [[ -n $NO_AV ]] || chain+=", av"
    cat >"$tmp/milter.conf" <<EOF
listen = $(mx_listen mxguard-milter 8897)
filters = $chain
dkim-config = $tmp/dkim.conf
dmarc-config = $tmp/dmarc.conf
av-config = $tmp/av.conf
$eng
EOF
    spawn mxguard-milter "$tmp/mx-milter.log" "$MXBIN/milters/host/mxguard-milter" --foreground \
      --log-target stderr --log-level warning -c "$tmp/milter.conf"
    wait_milter mxguard-milter 8897
    milters=$(pf_milter mxguard-milter 8897)
  else
    spawn mxguard-dkim "$tmp/mx-dkim.log" "$MXBIN/milters/dkim/mxguard-dkim" --foreground \
      --log-target stderr --log-level warning -c "$tmp/dkim.conf"
    spawn mxguard-dmarc "$tmp/mx-dmarc.log" "$MXBIN/milters/dmarc/mxguard-dmarc" --foreground \
      --log-target stderr --log-level warning -c "$tmp/dmarc.conf"
    milters="$(pf_milter mxguard-dkim 8891), $(pf_milter mxguard-dmarc 8893)"
    if [[ -z $NO_AV ]]; then
      spawn mxguard-av "$tmp/mx-av.log" "$MXBIN/milters/av/mxguard-av" --foreground \
        --log-target stderr --log-level warning -c "$tmp/av.conf"
      wait_milter mxguard-av 8895
      milters+=", $(pf_milter mxguard-av 8895)"
    fi
    wait_milter mxguard-dkim 8891; wait_milter mxguard-dmarc 8893
  fi
  wait_port 10023 mxguard-policyd
  pf_rcpt='check_policy_service inet:127.0.0.1:10023' pf_milters=$milters \
    pf_extra='' pf_master_extra='' pf_start "mxguard${combined:+-milter}"
}

start_classic() {
  sock_dir
  cat >"$tmp/opendkim.conf" <<EOF
Syslog no
Background no
Mode v
Socket $(lm_listen opendkim 8901)
UMask 007
AuthservID mx.bench.test
InternalHosts 127.0.0.9
PidFile $tmp/opendkim.pid
UserID root
TestPublicKeys $tmp/keys.txt
EOF
  # Debian's OpenDKIM resolves with libunbound, which ignores resolv.conf and refuses to
  # query localhost; its ResolverConfiguration (forward to 127.0.0.1@53) crashes under
  # concurrent connections ("fatal flex scanner internal error", see dkim_compare.sh) and
  # Nameservers 127.0.0.1 gets no answer (do-not-query-localhost). So OpenDKIM alone reads
  # the key from a file (TestPublicKeys, the same TXT record): one loopback DNS query less.
  echo 127.0.0.9 >"$tmp/ignorehosts"
  cat >"$tmp/opendmarc.conf" <<EOF
Syslog false
Background false
Socket $(lm_listen opendmarc 8903)
UMask 007
AuthservID mx.bench.test
TrustedAuthservIDs mx.bench.test
IgnoreHosts $tmp/ignorehosts
RejectFailures true
SPFSelfValidate true
HistoryFile $tmp/opendmarc.dat
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
PidFile $tmp/opendmarc.pid
UserID root
EOF
  cat >"$tmp/clamav-milter.conf" <<EOF
MilterSocket $(lm_listen clamav-milter 8905)
MilterSocketMode 660
ClamdSocket unix:$clamd_sock
Foreground yes
User root
PidFile $tmp/clamav-milter.pid
OnInfected Reject
OnFail Defer
AddHeader Replace
LogFile $tmp/clamav-milter.log
EOF
  # policyd-spf skips loopback clients by default; here 127.0.0.1 is an external client.
  cat >"$tmp/policyd-spf.conf" <<EOF
debugLevel = 0
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 127.0.0.9/32
Header_Type = SPF
Hide_Receiver = Yes
EOF
  mkdir -p "$tmp/postgrey-db"; : >"$tmp/empty"
  chown postgrey: "$tmp/postgrey-db"
  spawn opendkim "$tmp/opendkim.log" opendkim -f -x "$tmp/opendkim.conf"
  spawn opendmarc "$tmp/opendmarc.log" opendmarc -f -c "$tmp/opendmarc.conf"
  spawn postgrey "$tmp/postgrey.log" postgrey --inet=127.0.0.1:10030 --dbdir="$tmp/postgrey-db" \
    --delay="$GREY_DELAY" --auto-whitelist-clients=0 --whitelist-clients="$tmp/empty" \
    --whitelist-recipients="$tmp/empty" --pidfile="$tmp/postgrey.pid"
  local milters; milters="$(pf_milter opendkim 8901), $(pf_milter opendmarc 8903)"
  if [[ -z $NO_AV ]]; then
    spawn clamav-milter "$tmp/clamav-milter.out" /usr/sbin/clamav-milter -c "$tmp/clamav-milter.conf"
    wait_milter clamav-milter 8905
    milters+=", $(pf_milter clamav-milter 8905)"
  fi
  wait_milter opendkim 8901; wait_milter opendmarc 8903; wait_port 10030 postgrey
  pf_rcpt='check_policy_service unix:private/policyd-spf, check_policy_service inet:127.0.0.1:10030' \
    pf_milters=$milters pf_extra='policyd-spf_time_limit = 3600' \
    pf_master_extra="policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf $tmp/policyd-spf.conf" \
    pf_start classic
}

start_rspamd() {
  local r=$tmp/rspamd
  mkdir -p "$r/db" "$r/run" "$r/log"
  local av=""
  [[ -z $NO_AV ]] && av="antivirus {
  clamav {
    type = \"clamav\";
    servers = \"$clamd_sock\";
    symbol = \"CLAM_VIRUS\";
    action = \"reject\";
    scan_mime_parts = false;
    no_cache = true; # every message scanned, like the milters (no Redis result cache)
    log_clean = false;
  }
}"
  # Only the modules under test: a Lua plugin without a section stays unconfigured, and the
  # stock rule set (rspamd.lua: regexp, MIME and header heuristics) is not loaded.
  cat >"$r/rspamd.conf" <<EOF
options {
  pidfile = "$r/run/rspamd.pid";
  .include "\$CONFDIR/options.inc"
  local_addrs = [];
  dns { nameserver = ["127.0.0.1:53"]; timeout = 2s; retransmits = 2; }
}
logging { type = "file"; filename = "$r/log/rspamd.log"; level = "${RSPAMD_LOG_LEVEL:-warning}"; }
worker "normal" {
  bind_socket = "127.0.0.1:11333";
  .include "\$CONFDIR/worker-normal.inc"
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:11332";
  .include "\$CONFDIR/worker-proxy.inc"
  upstream "local" { default = yes; hosts = "127.0.0.1:11333"; }
}
redis { servers = "127.0.0.1:6390"; }
.include "\$CONFDIR/metrics.conf"
# greylist (the module) only acts on the greylist action: make it every message's action.
actions { reject = 150; add_header = 100; greylist = -100; }
.include "\$CONFDIR/groups.conf"
modules { path = "\${PLUGINSDIR}"; fallback_path = "\${SHAREDIR}/lua"; }
# rspamd skips loopback clients (ip:is_local()) unless check_local is on, whatever local_addrs
dkim { check_local = true; check_authed = true; }
spf { check_local = true; check_authed = true; }
dmarc { check_local = true; check_authed = true; }
greylist { timeout = ${GREY_DELAY}s; check_local = true; check_authed = true; }
milter_headers { use = ["authentication-results", "x-virus"]; skip_local = false; }
$av
EOF
  spawn rspamd "$r/log/stdout" rspamd -f -u root -g root -i -c "$r/rspamd.conf" \
    --var "DBDIR=$r/db" --var "RUNDIR=$r/run" --var "LOGDIR=$r/log" --var "LOCAL_CONFDIR=$r"
  wait_port 11332 rspamd; wait_port 11333 rspamd
  pf_rcpt='' pf_milters="inet:127.0.0.1:11332" pf_extra='' pf_master_extra='' pf_start rspamd
}

# ---- measurement --------------------------------------------------------------------------
declare -A cpu0
results=()
measure() {  # profile label
  local profile=$1 label=$2 name
  # Prime the greylist triplet (deferred at RCPT; -A: go on), wait, then warm up.
  "${source_cmd[@]}" -A -m 1 127.0.0.1:$SMTP_PORT >/dev/null 2>&1 || true
  sleep $((GREY_DELAY + 1))
  local base; base=$(sent)
  "${source_cmd[@]}" -m "$WARMUP" 127.0.0.1:$SMTP_PORT >"$tmp/warm.out" 2>&1 ||
    { cat "$tmp/warm.out"; tail -n 30 "$pf_dir/maillog"; die "$label: warm-up failed"; }
  wait_sent $((base + WARMUP)) 120
  base=$(sent)
  for name in "${!daemon_pid[@]}"; do cpu0[$name]=$(procstat "${daemon_pid[$name]}" | cut -d' ' -f1); done
  [[ $profile == classic ]] && cpu0[policyd-spf]=$(procstat "${daemon_pid[postfix]}" policyd-spf "$tmp/policyd-spf.conf" | cut -d' ' -f1)
  local mark; mark=$(wc -l <"$pf_dir/maillog")
  local start end
  rm -f "$tmp/probe.stop"
  # The latency probe: one more client, one message per session, sequential, timed from
  # connect to the reply to QUIT, for as long as smtp-source runs.
  /usr/bin/python3 - "$tmp/msg.signed" "$tmp/probe.stop" "$SMTP_PORT" >"$tmp/probe.out" 2>&1 <<'PY' &
import os, smtplib, sys, time
msg = open(sys.argv[1], "rb").read()
times = []
time.sleep(0.2)
while not os.path.exists(sys.argv[2]):
    t = time.monotonic()
    with smtplib.SMTP("127.0.0.1", int(sys.argv[3]), local_hostname="mail.sender.test") as s:
        s.sendmail("alice@sender.test", ["bob@dest.test"], msg)
    times.append((time.monotonic() - t) * 1000)
times.sort()
n = len(times)
print("%.1f %.1f %d" % (times[(n - 1) // 2], times[min(n - 1, int(n * 0.99))], n) if n else "n/a n/a 0")
PY
  local probe=$!
  start=$(date +%s.%N)
  "${source_cmd[@]}" -m "$MESSAGES" 127.0.0.1:$SMTP_PORT >"$tmp/run.out" 2>&1 ||
    { cat "$tmp/run.out"; tail -n 30 "$pf_dir/maillog"; die "$label: smtp-source failed"; }
  local src_end; src_end=$(date +%s.%N)
  touch "$tmp/probe.stop"
  wait "$probe" || { cat "$tmp/probe.out"; die "$label: latency probe failed"; }
  local lat; lat=$(tail -n1 "$tmp/probe.out")
  wait_sent $((base + MESSAGES + ${lat##* })) 600
  end=$(date +%s.%N)
  sleep 0.3
  tail -n +"$((mark + 1))" "$pf_dir/maillog" >"$tmp/$profile.measured.log"
  local rejects; rejects=$(grep -cE 'reject:|milter-reject|status=(deferred|bounced)' "$tmp/$profile.measured.log" || true)
  local wall; wall=$(echo "$end - $start" | bc -l)
  local rate; rate=$(echo "$MESSAGES / $wall" | bc -l)
  # Per-daemon CPU seconds and peak RSS.
  local detail="" total_rss=0 total_pss=0 filter_cpu=0 s ticks hwm n pss
  local names; names=$(printf '%s\n' "${!daemon_pid[@]}" | sort)
  local spf_delta=0
  [[ $profile == classic ]] && { read -r ticks hwm n <<<"$(procstat "${daemon_pid[postfix]}" policyd-spf "$tmp/policyd-spf.conf")"; spf_delta=$((ticks - ${cpu0[policyd-spf]})); }
  [[ $profile == classic ]] && names+=$'\npolicyd-spf'
  for name in $names; do
    if [[ $name == policyd-spf ]]; then
      s=$(procstat "${daemon_pid[postfix]}" policyd-spf "$tmp/policyd-spf.conf")
    else
      [[ $name == sink || $name == redis && $profile != mxguard* && $profile != rspamd ]] && continue
      [[ $name == clamd && $profile == postfix ]] && continue
      s=$(procstat "${daemon_pid[$name]}")
    fi
    read -r ticks hwm n pss <<<"$s"
    local cpu=$(((ticks - ${cpu0[$name]:-0})))
    [[ $name == postfix && $profile == classic ]] && cpu=$((cpu - spf_delta))
    detail+="$name $(printf '%.2f' "$(echo "$cpu / 100" | bc -l)") s, $((hwm / 1024)) MiB (Pss $((pss / 1024)))"
    ((n > 1)) && detail+=" ($n procs)"
    detail+="; "
    if [[ $name != postfix && $name != clamd && $name != redis ]]; then
      total_rss=$((total_rss + hwm)); total_pss=$((total_pss + pss)); filter_cpu=$((filter_cpu + cpu))
    fi
  done
  read -r p50 p99 nlat <<<"$lat"
  results+=("$(printf '| %s | %.0f | %.2f | %s | %s | %.2f | %s | %s | %s |' "$label" "$rate" "$wall" \
    "$p50" "$p99" "$(echo "$filter_cpu / 100" | bc -l)" "$((total_rss / 1024)) / $((total_pss / 1024))" "$rejects" "${detail%; }")")
  log "$label: $(printf '%.0f' "$rate") msg/s (smtp-source done after $(echo "$src_end - $start" | bc -l | cut -c1-5) s, all delivered after $(printf '%.2f' "$wall") s), p50 $p50 ms, p99 $p99 ms over $nlat probe sessions"
  echo "${results[-1]}" >&2
}

load0=$(cut -d" " -f1-3 /proc/loadavg)
log "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $MESSAGES messages, $SESSIONS sessions, NO_AV=${NO_AV:-0}, milters on $MILTER_SOCKETS sockets"
for profile in $PROFILES; do
  case $profile in
    postfix) start_postfix_alone; measure postfix "Postfix alone" ;;
    mxguard) start_mxguard; measure mxguard "mxguard (separate daemons)" ;;
    mxguard-milter) start_mxguard combined; measure mxguard-milter "mxguard-milter (one milter, libmilter)" ;;
    mxguard-engine) start_mxguard combined mxguard; measure mxguard-engine "mxguard-milter (one milter, own engine)" ;;
    mxguard-sep-engine) start_mxguard "" mxguard; measure mxguard-sep-engine "mxguard (separate daemons, own engine)" ;;
    classic) start_classic; measure classic "classic stack" ;;
    rspamd) start_rspamd; measure rspamd "rspamd" ;;
    *) die "unknown profile $profile" ;;
  esac
  if [[ -n ${CHECK:-} && -z $NO_AV && $profile != postfix ]]; then
    # One EICAR message: every antivirus part must refuse it.
    /usr/bin/python3 - "$SMTP_PORT" "$eicar" >&2 <<'PY' || true
import smtplib, sys
msg = ("From: alice@sender.test\r\nTo: bob@dest.test\r\nSubject: eicar\r\n\r\n" + sys.argv[2] + "\r\n").encode()
try:
    with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="mail.sender.test") as s:
        s.sendmail("alice@sender.test", ["bob@dest.test"], msg)
    print("EICAR message: ACCEPTED")
except smtplib.SMTPException as e:
    print("EICAR message: refused:", e)
PY
  fi
  if [[ -n ${CHECK:-} ]]; then
    log "$profile: headers of the last message at the sink:"
    awk '/^Received: from mx.bench.test/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' \
      "$tmp/sink/dump" | sed -n '1,/^$/p' | grep -vE '^\s+(h=|b=|bh=)' >&2 || true
  fi
  stop_daemons
  # the shared back ends stay: restart the bookkeeping for the next profile
  [[ -n ${daemon_pid[redis]:-} ]] || true
done

echo "$MESSAGES messages, $SESSIONS smtp-source sessions, 4 KiB DKIM-signed message; $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load average before: $load0; clamd $([[ -n $NO_AV ]] && echo excluded || echo included)"
echo
echo "| profile | msg/s | wall s | p50 ms | p99 ms | filter CPU s | filter RSS MiB: peak / Pss | rejected/deferred | per daemon: CPU s, peak RSS MiB (VmHWM summed over its processes) and Pss at the end |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${results[@]}"
