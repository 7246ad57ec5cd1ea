#!/bin/bash
# The package test (tests/run.sh runs it after ctest; MXGUARD_SKIP_PACKAGE=1 skips it there):
# builds the .deb, runs lintian, installs it with dpkg -i ON THIS MACHINE (not in a chroot),
# checks what the maintainer scripts made, runs the daemon from the shipped configuration as
# user mxguard against a private redis-server and asks it a policy question as Postfix would,
# runs mxguard-dkim the same way and has miltertest run a verify and a sign session on its
# socket (with a key from mxguard-keygen), runs mxguard-setup against a copy of Debian's stock
# main.cf, then removes and purges the
# package and checks that nothing it created is left. Needs root. Must never touch
# /etc/postfix or the system's Redis, and stops only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${MXGUARD_DEB_DIR:-$root/build/deb}
spool=/var/spool/postfix/mxguard
unit=/lib/systemd/system/mxguard-policyd.service
dkim_unit=/lib/systemd/system/mxguard-dkim.service
dmarc_unit=/lib/systemd/system/mxguard-dmarc.service
av_unit=/lib/systemd/system/mxguard-av.service
start=$(date +%s)

[ "$(id -u)" = 0 ] || { echo "package test: needs root (dpkg -i)" >&2; exit 1; }

failures=0
pass() { echo "package test: ok: $*"; }
fail() { echo "package test: FAILED: $*" >&2; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

tmp=$(mktemp -d /tmp/mxguard-pkgtest.XXXXXX)
chmod 0755 "$tmp"
redis_pid="" daemon_pid="" dkim_pid=""
cleanup() {
  # Only the processes this script started, by pid.
  for pid in $daemon_pid $dkim_pid $redis_pid; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  if [ "${failures:-0}" != 0 ] || [ "${completed:-0}" != 1 ]; then
    echo "package test: daemon log:"; cat "$tmp/daemon.log" 2>/dev/null | tail -n 20 || true
    echo "package test: mxguard-dkim log:"; cat "$tmp/dkim.log" 2>/dev/null | tail -n 20 || true
  fi
  # Leave no package from a failed run behind.
  if dpkg-query -W -f='${Status}' mxguard 2>/dev/null | grep -qv "not-installed"; then
    dpkg --purge mxguard >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' mxguard 2>/dev/null | grep -q "ok installed\|config-files"; then
  echo "package test: mxguard is installed (an earlier run?); purging it first"
  dpkg --purge mxguard >/dev/null
fi
spool_parent_existed=0; [ -d /var/spool/postfix ] && spool_parent_existed=1

# check_conffile DAEMON: /etc/mxguard/DAEMON.conf is short (the options of
# packaging/conffile-options and the package's choices, each a real option, the file under 80
# lines); examples/DAEMON.conf lists every option of --dump-config and the daemon accepts it.
check_conffile() {
  local d=$1 ref=/usr/share/doc/mxguard/examples/$1.conf
  check "every option is in examples/$d.conf" bash -c \
    "diff <(mxguard-$d -c /dev/null --dump-config | sed -n 's/^\([a-z0-9-]*\) =.*/\1/p') \
          <(sed -n 's/^#\?\([a-z0-9-]*\) =.*/\1/p' $ref)"
  check "$d.conf lists the options of packaging/conffile-options, nothing unknown" bash -c \
    "diff <(sed -n 's/^$d: //p' '$root/packaging/conffile-options' | tr ' ' '\n' | sort) \
          <(sed -n 's/^#\?\([a-z0-9-]*\) =.*/\1/p' /etc/mxguard/$d.conf | sort)"
  check "$d.conf is short ($(wc -l </etc/mxguard/$d.conf) lines < 80)" test "$(wc -l </etc/mxguard/$d.conf)" -lt 80
  check "mxguard-$d accepts examples/$d.conf" "/usr/sbin/mxguard-$d" -c "$ref" --check-config
}

# --- build -------------------------------------------------------------------------------
t0=$(date +%s)
deb=$(MXGUARD_DEB_CCACHE=1 bash packaging/build-deb.sh "$out" | tail -n 1)
changes=${deb%.deb}.changes
echo "package test: built $(basename "$deb") in $(( $(date +%s) - t0 ))s"

# --- lintian: errors fail; warnings are listed and justified in packaging/README.md ---------
lintian --pedantic --display-info --fail-on error "$changes" >"$tmp/lintian.txt" 2>&1 &&
  pass "lintian: no errors" || fail "lintian reports errors"
grep -v "^running with root privileges" "$tmp/lintian.txt" | sed 's/^/  lintian: /' || true

# --- install -------------------------------------------------------------------------------
if ! dpkg -i "$deb" >"$tmp/dpkg-i.log" 2>&1; then
  echo "package test: dpkg -i left dependencies missing; apt-get -f install"
  DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq >/dev/null
fi
dpkg-query -W -f='${Status}' mxguard | grep -q "install ok installed" &&
  pass "dpkg -i: installed" || { fail "dpkg -i"; cat "$tmp/dpkg-i.log"; exit 1; }
dpkg -L mxguard >"$tmp/files"

stat_is() { [ "$(stat -c '%U:%G %a' "$1")" = "$2" ] || { echo "  $1: $(stat -c '%U:%G %a' "$1"), want $2"; false; }; }
check "user and group mxguard exist" getent passwd mxguard
check "mxguard's shell is nologin" test "$(getent passwd mxguard | cut -d: -f7)" = /usr/sbin/nologin
check "postfix is in group mxguard" bash -c "id -nG postfix | tr ' ' '\n' | grep -qx mxguard"
check "$spool is mxguard:postfix 2750" stat_is "$spool" "mxguard:postfix 2750"
check "/etc/mxguard/keys is mxguard:mxguard 750" stat_is /etc/mxguard/keys "mxguard:mxguard 750"
check "policyd.conf is root:mxguard 640" stat_is /etc/mxguard/policyd.conf "root:mxguard 640"
check "dkim.conf is root:mxguard 640" stat_is /etc/mxguard/dkim.conf "root:mxguard 640"
check "dmarc.conf is root:mxguard 640" stat_is /etc/mxguard/dmarc.conf "root:mxguard 640"
check "av.conf is root:mxguard 640" stat_is /etc/mxguard/av.conf "root:mxguard 640"
for u in "$unit" "$dkim_unit" "$dmarc_unit" "$av_unit" /lib/systemd/system/mxguard-dmarc-report.service; do
  check "$(basename "$u") is installed and not enabled" \
    bash -c "test -f $u && ! test -e /etc/systemd/system/multi-user.target.wants/$(basename "$u")"
  check "systemd-analyze verify accepts $(basename "$u")" systemd-analyze verify "$u"
done
check "mxguard-dkim.service reloads with SIGUSR1 (libmilter owns SIGHUP)" \
  grep -qx 'ExecReload=/bin/kill -USR1 $MAINPID' "$dkim_unit"
check "mxguard-dmarc.service reloads with SIGUSR1" \
  grep -qx 'ExecReload=/bin/kill -USR1 $MAINPID' "$dmarc_unit"
check "systemd-analyze verify accepts mxguard-dmarc-report.timer" \
  systemd-analyze verify /lib/systemd/system/mxguard-dmarc-report.timer
check "mxguard-av.service reloads with SIGUSR1 (libmilter owns SIGHUP)" \
  grep -qx 'ExecReload=/bin/kill -USR1 $MAINPID' "$av_unit"
for page in mxguard-policyd.8 mxguard-grey.1 mxguard-setup.8 mxguard.conf.5 mxguard-dkim.8 \
            mxguard-keygen.1 mxguard-dnscheck.1 mxguard-dmarc.8 mxguard-dmarc-report.8 mxguard-av.8 \
            mxguard-authpolicy.8; do
  check "man page $page renders without warnings" bash -c \
    "test -z \"\$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l /usr/share/man/man${page##*.}/$page.gz 2>&1 >/dev/null)\""
done
check "shipped config: --check-config as root" /usr/sbin/mxguard-policyd --check-config
check "shipped config: --check-config as mxguard" \
  setpriv --reuid=mxguard --regid=mxguard --init-groups /usr/sbin/mxguard-policyd --check-config
check "mxguard-grey reads the shipped config" /usr/bin/mxguard-grey --check-config
check_conffile policyd
# dkim.conf names no key: mxguard-dkim starts verify-only until the admin adds one.
check "dkim.conf: --check-config as root" /usr/sbin/mxguard-dkim --check-config
check "dkim.conf: --check-config as mxguard" \
  setpriv --reuid=mxguard --regid=mxguard --init-groups /usr/sbin/mxguard-dkim --check-config
check_conffile dkim
check "dmarc.conf: --check-config as mxguard" \
  setpriv --reuid=mxguard --regid=mxguard --init-groups /usr/sbin/mxguard-dmarc --check-config
check "mxguard-dmarc-report reads dmarc.conf" /usr/sbin/mxguard-dmarc-report --check-config
check_conffile dmarc
check "authpolicy.conf is root:mxguard 640" stat_is /etc/mxguard/authpolicy.conf "root:mxguard 640"
check "authpolicy.conf: --check-config as mxguard" \
  setpriv --reuid=mxguard --regid=mxguard --init-groups /usr/sbin/mxguard-authpolicy --check-config
check_conffile authpolicy
check "hop secret made at install, root:mxguard 640" stat_is /etc/mxguard/hop-secret "root:mxguard 640"
check "hop secret is 64 hex digits" grep -Eqx '[0-9a-f]{64}' /etc/mxguard/hop-secret
check "authpolicy API key made at install, root:mxguard 640" stat_is /etc/mxguard/authpolicy-api-header "root:mxguard 640"
check "authpolicy API key is 'X-API-Key: <32 hex>'" grep -Eqx 'X-API-Key: [0-9a-f]{32}' /etc/mxguard/authpolicy-api-header
check "authpolicy.conf: listens on loopback TCP (the default)" grep -Eqx '#?listen = inet:127.0.0.1:10060' /etc/mxguard/authpolicy.conf
check "systemd-analyze verify accepts mxguard-authpolicy.service" \
  systemd-analyze verify /lib/systemd/system/mxguard-authpolicy.service
# The socket in the spool is mxguard-dkim's compiled-in default (a TCP port would let any local
# user claim {auth_authen}), so the shipped file only sets user; listen is there, commented.
check "dkim.conf: the only active line is user; listen is the spool socket (the default)" \
  test "$(grep -v '^#' /etc/mxguard/dkim.conf | grep . | tr '\n' ' ')" = "user = mxguard "
check "dkim.conf: listen = unix:$spool/dkim.sock" \
  grep -Eqx "#?listen = unix:$spool/dkim.sock" /etc/mxguard/dkim.conf
# av.conf: Debian's clamd socket is the default, so the shipped file only sets listen and user.
check "av.conf: --check-config as mxguard" \
  setpriv --reuid=mxguard --regid=mxguard --init-groups /usr/sbin/mxguard-av --check-config
check_conffile av
check "av.conf: active lines are listen (unix socket in the spool) and user" \
  test "$(grep -v '^#' /etc/mxguard/av.conf | grep . | tr '\n' ' ')" = \
       "listen = unix:$spool/av.sock user = mxguard "
# mxguard-milter (issue 17): the three filters behind one socket, each from its own file.
check "milter.conf: --check-config as mxguard (reads dkim.conf, dmarc.conf, av.conf)" \
  setpriv --reuid=mxguard --regid=mxguard --init-groups /usr/sbin/mxguard-milter --check-config
check_conffile milter
check "milter.conf: listens on the spool socket" grep -Eqx "#?listen = unix:$spool/milter.sock" /etc/mxguard/milter.conf
check "systemd-analyze verify accepts mxguard-milter.service" \
  systemd-analyze verify /lib/systemd/system/mxguard-milter.service
check "mxguard-milter.service is not enabled" bash -c '! systemctl is-enabled --quiet mxguard-milter 2>/dev/null'
# Monitoring examples (docs/monitoring.md), uncompressed so they can be copied as they are.
check "examples/grafana/mxguard.json is the dashboard (valid JSON)" \
  /usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' /usr/share/doc/mxguard/examples/grafana/mxguard.json
check "examples/prometheus/mxguard-rules.yml is shipped" test -f /usr/share/doc/mxguard/examples/prometheus/mxguard-rules.yml
check "docs/monitoring.md is shipped" test -f /usr/share/doc/mxguard/monitoring.md.gz
check "docs/redis.md (Sentinel, the breaker, remote Redis without TLS) is shipped" test -f /usr/share/doc/mxguard/redis.md.gz

# --- run the daemon as the unit does: user mxguard, shipped config, private Redis -----------
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$tmp/redis"
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$tmp/redis" \
  >"$tmp/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
check "private redis-server on 127.0.0.1:$port" bash -c "redis-cli -p $port ping | grep -q PONG"

(umask 0027; exec setpriv --reuid=mxguard --regid=mxguard --init-groups \
  /usr/sbin/mxguard-policyd --foreground --log-target stderr \
  --redis-url "redis://127.0.0.1:$port/0") >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 50); do [ -S "$spool/policyd.sock" ] && break; sleep 0.1; done
check "the daemon listens on $spool/policyd.sock" test -S "$spool/policyd.sock"
check "the socket has group postfix (setgid directory)" \
  test "$(stat -c %G "$spool/policyd.sock")" = postfix

cat >"$tmp/ask.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("permission denied")
    sys.exit(13)
s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=198.51.100.1\n"
          b"client_name=x\nsender=a@b.example\nrecipient=c@d.example\n\n")
reply = b""
while not reply.endswith(b"\n\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
print(reply.decode().strip())
PY
chmod 0644 "$tmp/ask.py"
# Postfix's smtpd runs as postfix with only its primary group (set_ugid()): do the same.
ask() { setpriv --reuid="$1" --regid="$(id -g "$1")" --clear-groups /usr/bin/python3 "$tmp/ask.py" "$spool/policyd.sock"; }
reply=$(ask postfix 2>&1) || true
echo "  reply: $reply"
check "a policy request from user postfix is greylisted" grep -q "^action=DEFER_IF_PERMIT" <<<"$reply"
rc=0; ask nobody >/dev/null 2>&1 || rc=$?
check "user nobody cannot reach the socket (permission denied)" test "$rc" = 13
kill -HUP "$daemon_pid"; sleep 0.5
reply=$(ask postfix 2>&1) || true
check "after SIGHUP (reload) it still answers" grep -q "^action=DEFER_IF_PERMIT" <<<"$reply"
kill "$daemon_pid"; wait "$daemon_pid" && rc=0 || rc=$?
daemon_pid=""
check "SIGTERM: exit 0 (was $rc)" test "$rc" = 0
check "the socket is removed on exit" test ! -e "$spool/policyd.sock"
kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""

# --- mxguard-keygen: a key pair for the signing session below -------------------------------
mkdir -m 0755 "$tmp/keys"
mxguard-keygen --domain example.org --selector pkgtest --dir "$tmp/keys" --user mxguard \
  >"$tmp/keygen.out" 2>&1 && pass "mxguard-keygen generate" ||
  { fail "mxguard-keygen generate"; cat "$tmp/keygen.out"; }
check "the private key is mxguard:mxguard 600" stat_is "$tmp/keys/pkgtest.private" "mxguard:mxguard 600"
check "pkgtest.txt holds the zone-file TXT record" \
  grep -q '^pkgtest\._domainkey[[:space:]]IN[[:space:]]TXT[[:space:]]( "v=DKIM1; k=rsa; p=' "$tmp/keys/pkgtest.txt"
check "mxguard-keygen printed the one-line TXT value" grep -q '^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]*$' "$tmp/keygen.out"
rc=0; mxguard-keygen --domain example.org --selector pkgtest --dir "$tmp/keys" >/dev/null 2>&1 || rc=$?
check "mxguard-keygen never overwrites a key (exit 1, was $rc)" test "$rc" = 1
# The rotation step's example units (contrib/systemd), shipped under examples/systemd/.
for u in mxguard-dkim-rotate.service mxguard-dkim-rotate.timer; do
  check "systemd-analyze verify accepts examples/systemd/$u" \
    systemd-analyze verify "/usr/share/doc/mxguard/examples/systemd/$u"
done
# mxguard-dnscheck reads the shipped dkim.conf (no key: nothing to check, exit 2) and runs its
# checks against an unreachable resolver (every lookup fails: exit 1).
rc=0; mxguard-dnscheck >"$tmp/dnscheck.out" 2>&1 || rc=$?
check "mxguard-dnscheck with the shipped dkim.conf: no signing domain, exit 2 (was $rc)" \
  bash -c "test $rc = 2 && grep -q 'name the domains' '$tmp/dnscheck.out'"
rc=0; mxguard-dnscheck --dns-servers 127.0.0.1@9 --dns-timeout 300ms --json example.org \
  >"$tmp/dnscheck.json" 2>&1 || rc=$?
check "mxguard-dnscheck --json example.org without DNS: exit 1, JSON with 3 lookup errors: SPF, DMARC, MX (was $rc)" \
  bash -c "test $rc = 1 && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"summary\"][\"error\"] == 3' '$tmp/dnscheck.json'"

# --- run mxguard-dkim as the unit does: user mxguard, shipped config --------------------------
# The shipped config has no key (verify only); the generated key is added on the command line
# so that one session verifies (external client) and one signs (internal client 127.0.0.1).
(umask 0027; exec setpriv --reuid=mxguard --regid=mxguard --init-groups \
  /usr/sbin/mxguard-dkim --foreground --log-target stderr \
  --signing-key "example.org:pkgtest:$tmp/keys/pkgtest.private") >"$tmp/dkim.log" 2>&1 &
dkim_pid=$!
for _ in $(seq 50); do [ -S "$spool/dkim.sock" ] && break; sleep 0.1; done
check "mxguard-dkim listens on $spool/dkim.sock" test -S "$spool/dkim.sock"
check "the milter socket is mxguard:postfix 660 (setgid directory, socket_mode 0660)" \
  stat_is "$spool/dkim.sock" "mxguard:postfix 660"

cat >"$tmp/connect.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
PY
chmod 0644 "$tmp/connect.py"
# miltertest cannot run as postfix with only its primary group; a bare connect() can, which
# is all the permission check needs (smtpd runs so, see above).
connect_as() { setpriv --reuid="$1" --regid="$(id -g "$1")" --clear-groups /usr/bin/python3 "$tmp/connect.py" "$spool/dkim.sock"; }
check "user postfix (primary group only) can connect to dkim.sock" connect_as postfix
rc=0; connect_as nobody || rc=$?
check "user nobody cannot connect to dkim.sock (permission denied)" test "$rc" = 13

# One milter session as Postfix's smtpd runs it, as root (miltertest cannot drop to postfix).
cat >"$tmp/session.lua" <<'LUA'
-- Globals from miltertest -D: sock (unix:PATH), ip (the client address), want (the header
-- the milter must add at end of message).
local function reply_ok(conn, what)
  local r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE then error(what .. ": unexpected reply " .. tostring(r)) end
end
mt.set_timeout(10)
local conn = mt.connect(sock, 20, 0.25)
if conn == nil then error("mt.connect(" .. sock .. ") failed") end
if mt.conninfo(conn, "client.example", ip) ~= nil then error("mt.conninfo() failed") end
reply_ok(conn, "connect")
-- No mt.helo() and mt.rcptto(): mxguard-dkim negotiates SMFIP_NOHELO and SMFIP_NORCPT
-- (Postfix then never sends them), and miltertest exits 1 on a step the filter declined.
mt.macro(conn, SMFIC_MAIL, "i", "4Xk2Qz1abc")
if mt.mailfrom(conn, "<alice@example.org>") ~= nil then error("mt.mailfrom() failed") end
reply_ok(conn, "mail from")
for _, h in ipairs({{"From", "Alice <alice@example.org>"}, {"To", "bob@example.net"},
                    {"Subject", "package test"}, {"Date", "Sun, 22 Nov 2026 10:00:00 +0000"},
                    {"Message-ID", "<pkgtest@example.org>"}}) do
  if mt.header(conn, h[1], h[2]) ~= nil then error("mt.header() failed") end
  reply_ok(conn, "header " .. h[1])
end
if mt.eoh(conn) ~= nil then error("mt.eoh() failed") end
reply_ok(conn, "eoh")
if mt.bodystring(conn, "Hello Bob.\r\n") ~= nil then error("mt.bodystring() failed") end
reply_ok(conn, "body")
if mt.eom(conn) ~= nil then error("mt.eom() failed") end
local r = mt.getreply(conn)
if r ~= SMFIR_ACCEPT and r ~= SMFIR_CONTINUE then error("eom: unexpected reply " .. tostring(r)) end
local value = mt.getheader(conn, want, 0)
if value == nil then error("eom: no " .. want .. " header added") end
print(want .. ": " .. value)
mt.disconnect(conn)
LUA
session() {  # session CLIENT-IP HEADER: runs one session, prints the added header
  miltertest -s "$tmp/session.lua" -D "sock=unix:$spool/dkim.sock" -D "ip=$1" -D "want=$2" 2>&1
}
out=$(session 192.0.2.7 Authentication-Results) && rc=0 || rc=$?
sed 's/^/  miltertest: /' <<<"$out"
check "milter session from 192.0.2.7: accepted, Authentication-Results dkim=none" \
  bash -c "test $rc = 0 && grep -q 'dkim=none' <<<\"\$1\"" _ "$out"
out=$(session 127.0.0.1 DKIM-Signature) && rc=0 || rc=$?
sed 's/^/  miltertest: /' <<<"$out" | head -n 3
check "milter session from 127.0.0.1: signed with the mxguard-keygen key (d=example.org s=pkgtest)" \
  bash -c "test $rc = 0 && grep -q 'd=example.org;' <<<\"\$1\" && grep -q 's=pkgtest;' <<<\"\$1\"" _ "$out"
kill -USR1 "$dkim_pid"; sleep 0.5
out=$(session 192.0.2.7 Authentication-Results) && rc=0 || rc=$?
check "after SIGUSR1 (reload) it still answers" test "$rc" = 0
check "the log has one line per message" \
  bash -c "test \"\$(grep -c '4Xk2Qz1abc: mode=' $tmp/dkim.log)\" = 3"
kill "$dkim_pid"; wait "$dkim_pid" && rc=0 || rc=$?
dkim_pid=""
check "mxguard-dkim SIGTERM: exit 0 (was $rc)" test "$rc" = 0
check "dkim.sock is removed on exit" test ! -e "$spool/dkim.sock"

# --- mxguard-setup on copies of a stock Debian "Internet Site" main.cf --------------------
# packaging/test-setup.sh (also run by ctest on the source tree's script) drives the installed
# mxguard-setup with postconf -c on temp directories: auto wiring, per-milter default_action,
# --remove, backups, the tools it replaces.
bash "$root/packaging/test-setup.sh" /usr/sbin/mxguard-setup >"$tmp/setup.out" 2>&1 &&
  pass "packaging/test-setup.sh with the installed mxguard-setup" ||
  { fail "packaging/test-setup.sh"; cat "$tmp/setup.out"; }
grep '^setup test: ' "$tmp/setup.out" | sed 's/^/  /'
# Removing the package unwires main.cf (prerm runs mxguard-setup postfix --remove): here on a
# temp Postfix configuration named by MAIL_CONFIG, which postconf and mxguard-setup honour.
pf=$tmp/postfix
mkdir "$pf"
cat /usr/share/postfix/main.cf.debian >"$pf/main.cf"
cp /usr/share/postfix/master.cf.dist "$pf/master.cf"
postconf -c "$pf" -e "smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated defer_unauth_destination" \
  "myhostname=mx.example.org"
cp "$pf/main.cf" "$tmp/main.cf.orig"
mxguard-setup postfix --config-directory "$pf" --policy yes --milters dkim >/dev/null 2>&1
check "mxguard-setup wired the temp main.cf" grep -q "unix:mxguard/dkim.sock" "$pf/main.cf"

# --- remove, then purge ----------------------------------------------------------------------
MAIL_CONFIG=$pf dpkg -r mxguard >"$tmp/remove.log" 2>&1
sed 's/^/  remove: /' "$tmp/remove.log"
check "remove unwires main.cf: the stock file again" cmp -s "$pf/main.cf" "$tmp/main.cf.orig"
check "remove says so" grep -q "mxguard: unwired" "$tmp/remove.log"
check "remove keeps the conffiles" bash -c "test -f /etc/mxguard/policyd.conf && test -f /etc/mxguard/dkim.conf"
check "remove deletes the binaries and the units" bash -c "test ! -e /usr/sbin/mxguard-policyd &&
  test ! -e /usr/sbin/mxguard-dkim && test ! -e /usr/bin/mxguard-keygen && test ! -e /usr/bin/mxguard-dnscheck &&
  test ! -e $unit && test ! -e $dkim_unit"
# An admin-made key and a local whitelist must survive purge, with a message.
echo "fake key" >/etc/mxguard/keys/test.private
echo "192.0.2.1" >/etc/mxguard/whitelist_clients.local
dpkg --purge mxguard >"$tmp/purge.log" 2>&1
sed 's/^/  purge: /' "$tmp/purge.log"
check "purge keeps admin files: keys/test.private and whitelist_clients.local" \
  bash -c "test -f /etc/mxguard/keys/test.private && test -f /etc/mxguard/whitelist_clients.local &&
           test \"\$(ls -A /etc/mxguard | sort | tr '\n' ' ')\" = 'keys whitelist_clients.local '"
check "purge says it kept the keys" grep -q "kept /etc/mxguard/keys" "$tmp/purge.log"
rm -r /etc/mxguard   # the admin's own files, made by this test

left=()
while read -r f; do
  case $f in /.|/etc|/lib|/lib/systemd|/lib/systemd/system|/usr|/usr/bin|/usr/sbin|/usr/share|\
    /usr/share/doc|/usr/share/man|/usr/share/man/man?) continue ;; esac
  [ -e "$f" ] && left+=("$f")
done <"$tmp/files"
check "every file of the package is gone (${left[*]:-none left})" test ${#left[@]} = 0
check "$spool is gone" test ! -e "$spool"
if [ "$spool_parent_existed" = 1 ]; then
  check "/var/spool/postfix (Postfix's) is still there" test -d /var/spool/postfix
fi
check "/etc/mxguard is gone" test ! -e /etc/mxguard
check "no systemd state for the unit is left" bash -c \
  "! ls /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null | grep -q mxguard;
   ! find /etc/systemd /var/lib/systemd -name '*mxguard*' 2>/dev/null | grep -q ."
check "dpkg forgot the package" bash -c "! dpkg-query -W mxguard >/dev/null 2>&1 || dpkg-query -W -f='\${Status}' mxguard | grep -q not-installed"
check "postfix is no longer in group mxguard" bash -c "! id -nG postfix | tr ' ' '\n' | grep -qx mxguard"
echo "package test: kept on purge by design: user and group mxguard (packaging/README.md)"

completed=1
echo "package test: finished in $(( $(date +%s) - start ))s, $failures failure(s)"
[ "$failures" = 0 ]
