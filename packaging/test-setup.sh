#!/bin/bash
# The mxguard-setup test: runs mxguard-setup postfix with a real postconf(1) on temp copies of a
# stock Debian "Internet Site" main.cf (made as postfix's postinst makes it) and checks what it
# wires, what it skips and why, the per-milter default_action, --remove back to the original
# file, the backups, the DATA-stage permits, the rate-limit form, and the detection and
# --replace of postgrey, policyd-spf, OpenDKIM, OpenDMARC and clamav-milter.
# packaging/test.sh runs it on the installed /usr/sbin/mxguard-setup; ctest runs it on
# contrib/postfix/mxguard-setup. Needs postconf, not root. Must never touch /etc/postfix:
# every run names --config-directory, and systemctl is a stand-in that only reads FAKE_*.
#
#   test-setup.sh [MXGUARD-SETUP]
set -euo pipefail
setup=${1:-$(cd "$(dirname "$0")/.." && pwd)/contrib/postfix/mxguard-setup}
command -v postconf >/dev/null || { echo "setup test: postconf (package postfix) is missing" >&2; exit 1; }
[ -r /usr/share/postfix/main.cf.debian ] || { echo "setup test: /usr/share/postfix/main.cf.debian is missing" >&2; exit 1; }

failures=0
pass() { echo "setup test: ok: $*"; }
fail() { echo "setup test: FAILED: $*" >&2; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
tmp=$(mktemp -d /tmp/mxguard-setuptest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# systemctl as mxguard-setup asks it: units named in FAKE_ENABLED are enabled, in FAKE_ACTIVE
# running. The real one would ask this machine's systemd about its own units.
mkdir "$tmp/bin"
cat >"$tmp/bin/systemctl" <<'EOF'
#!/bin/bash
case $1 in
  is-enabled) if [[ " ${FAKE_ENABLED:-} " == *" ${2%.service} "* ]]; then echo enabled; exit 0; fi
              echo disabled; exit 1 ;;
  is-active) [ "$2" != --quiet ] || shift
             [[ " ${FAKE_ACTIVE:-} " == *" ${2%.service} "* ]] ;;
  *) echo "fake systemctl: $*" >&2; exit 1 ;;
esac
EOF
chmod +x "$tmp/bin/systemctl"
export PATH=$tmp/bin:$PATH
unset FAKE_ENABLED FAKE_ACTIVE MAIL_CONFIG

# A stock Debian "Internet Site" configuration, made the way postfix's postinst makes it
# (main.cf.debian, main.cf.tls, then postconf -e of the debconf answers).
stock() {  # stock DIR
  mkdir -p "$1"
  cat /usr/share/postfix/main.cf.debian /usr/share/postfix/main.cf.tls >"$1/main.cf"
  cp /usr/share/postfix/master.cf.dist "$1/master.cf"
  postconf -c "$1" -e \
    "smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated defer_unauth_destination" \
    "myhostname=mx.example.org" "alias_maps=hash:/etc/aliases" "alias_database=hash:/etc/aliases" \
    "myorigin=/etc/mailname" "mydestination=\$myhostname, mx.example.org, localhost.example.org, localhost" \
    "relayhost=" "mynetworks=127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128" "mailbox_size_limit=0" \
    "recipient_delimiter=+" "inet_interfaces=all" "inet_protocols=all"
  # The sockets mxguard-setup looks for: an empty queue directory of our own.
  mkdir -p "$1/spool/mxguard"
  postconf -c "$1" -e "queue_directory=$1/spool"
}
run() {  # run OUT ARGS...: mxguard-setup with stdout and stderr in OUT; returns its status
  local out=$1; shift
  "$setup" "$@" >"$out" 2>&1
}
n() { postconf -c "$pf" -n "$1" 2>/dev/null; }
h() { postconf -c "$pf" -h "$1"; }
echo "checks = spf, greylist" >"$tmp/policyd.conf"
P="--policyd-config $tmp/policyd.conf"

# --- nothing enabled: nothing wired, each daemon named with the reason ------------------------
pf=$tmp/pf
stock "$pf"
cp "$pf/main.cf" "$tmp/main.cf.stock"
postconf -c "$pf" -n >/dev/null 2>"$tmp/stock.err"
check "the stock Internet Site main.cf is clean for postconf" test ! -s "$tmp/stock.err"
run "$tmp/out0" postfix --config-directory "$pf" $P && rc=0 || rc=$?
sed 's/^/  0: /' "$tmp/out0"
check "nothing enabled: exit 0, nothing to do" bash -c "test $rc = 0 && grep -q 'nothing to do' $tmp/out0"
for d in policyd dkim dmarc av; do
  check "nothing enabled: $d skipped with the reason" \
    grep -q "^mxguard-setup: $d: skipped: mxguard-$d.service is neither enabled nor running and .*/$d.sock does not exist" "$tmp/out0"
done
check "nothing enabled: main.cf unchanged" cmp -s "$pf/main.cf" "$tmp/main.cf.stock"

# --- README.Debian's first steps: enable policyd only, run mxguard-setup --------------------
FAKE_ENABLED=mxguard-policyd run "$tmp/out1" postfix --config-directory "$pf" --dry-run $P
sed 's/^/  1: /' "$tmp/out1"
check "dry run changes nothing" cmp -s "$pf/main.cf" "$tmp/main.cf.stock"
FAKE_ENABLED=mxguard-policyd run "$tmp/out1" postfix --config-directory "$pf" $P
check "policyd enabled: says why it wired the policy service" \
  grep -q "^mxguard-setup: policyd: wiring the policy service (mxguard-policyd.service is enabled)" "$tmp/out1"
check "policyd enabled: the milters are skipped" bash -c "grep -q '^mxguard-setup: dkim: skipped' $tmp/out1 &&
  grep -q '^mxguard-setup: dmarc: skipped' $tmp/out1 && grep -q '^mxguard-setup: av: skipped' $tmp/out1"
check "RCPT: permits, reject_unauth_destination, then the policy service" test \
  "$(h smtpd_recipient_restrictions)" = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service unix:mxguard/policyd.sock"
check "DATA: the same permits in front of the policy service" test \
  "$(h smtpd_data_restrictions)" = "permit_mynetworks, permit_sasl_authenticated, check_policy_service unix:mxguard/policyd.sock"
check "policyd only: no milter wired" bash -c "test -z \"\$(postconf -c $pf -n smtpd_milters non_smtpd_milters)\""
check "milter_default_action is never set" test -z "$(n milter_default_action)"
check "milter_protocol is never set" test -z "$(n milter_protocol)"
check "the original is kept as main.cf.mxguard-setup.orig" cmp -s "$pf/main.cf.mxguard-setup.orig" "$tmp/main.cf.stock"
check "it says what happens when policyd is down" grep -q "451 4.3.5" "$tmp/out1"

# --- then dkim (enabled) and dmarc (running) ---------------------------------------------------
FAKE_ENABLED="mxguard-policyd mxguard-dkim" FAKE_ACTIVE=mxguard-dmarc \
  run "$tmp/out2" postfix --config-directory "$pf" $P
sed 's/^/  2: /' "$tmp/out2"
check "dkim enabled: wired, with the reason" grep -q "^mxguard-setup: dkim: wiring the milter (mxguard-dkim.service is enabled)" "$tmp/out2"
check "dmarc running: wired, with the reason" grep -q "^mxguard-setup: dmarc: wiring the milter (mxguard-dmarc.service is running)" "$tmp/out2"
check "av: skipped" grep -q "^mxguard-setup: av: skipped" "$tmp/out2"
check "smtpd_milters: per-milter default_action, dkim before dmarc" test "$(h smtpd_milters)" = \
  "{ unix:mxguard/dkim.sock, default_action=tempfail }, { unix:mxguard/dmarc.sock, default_action=tempfail }"
check "non_smtpd_milters: the signer only" test "$(h non_smtpd_milters)" = "{ unix:mxguard/dkim.sock, default_action=tempfail }"
check "still no global milter_default_action" test -z "$(n milter_default_action)"
check "main.cf.mxguard-setup.orig is not overwritten" cmp -s "$pf/main.cf.mxguard-setup.orig" "$tmp/main.cf.stock"
check "main.cf.mxguard-setup.bak is the version before this run" \
  bash -c "grep -q 'check_policy_service unix:mxguard/policyd.sock' $pf/main.cf.mxguard-setup.bak && ! grep -q 'smtpd_milters' $pf/main.cf.mxguard-setup.bak"
FAKE_ENABLED="mxguard-policyd mxguard-dkim" FAKE_ACTIVE=mxguard-dmarc \
  run "$tmp/out3" postfix --config-directory "$pf" $P
check "run again: nothing to do" grep -q "nothing to do" "$tmp/out3"
# A milter wired earlier whose daemon is now stopped and disabled is kept, with a warning.
FAKE_ENABLED="mxguard-policyd mxguard-dkim" run "$tmp/out3b" postfix --config-directory "$pf" $P
check "auto keeps a wired milter that stopped, and warns" bash -c \
  "grep -q 'warning: dmarc is wired but' $tmp/out3b && grep -q 'nothing to do' $tmp/out3b"
# A socket counts as a running daemon (e.g. one started by hand).
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$pf/spool/mxguard/av.sock"
FAKE_ENABLED="mxguard-policyd mxguard-dkim" FAKE_ACTIVE=mxguard-dmarc \
  run "$tmp/out4" postfix --config-directory "$pf" $P --dry-run
check "a socket counts: av wired, with the reason" grep -q "^mxguard-setup: av: wiring the milter ($pf/spool/mxguard/av.sock exists)" "$tmp/out4"
check "av goes last" grep -q "^+smtpd_milters = .*dmarc.sock, default_action=tempfail }, { unix:mxguard/av.sock, default_action=tempfail }$" "$tmp/out4"
rm "$pf/spool/mxguard/av.sock"

# --- --remove: back to the admin's file --------------------------------------------------------
run "$tmp/out5" postfix --config-directory "$pf" --remove --dry-run
check "--remove --dry-run changes nothing" bash -c "grep -q 'dry run' $tmp/out5 && grep -q smtpd_milters $pf/main.cf"
run "$tmp/out5" postfix --config-directory "$pf" --remove
sed 's/^/  5: /' "$tmp/out5"
check "--remove: main.cf is the stock file again, byte for byte" cmp -s "$pf/main.cf" "$tmp/main.cf.stock"
check "--remove: no mxguard socket left in main.cf" bash -c "! grep -q 'mxguard/' $pf/main.cf"
run "$tmp/out6" postfix --config-directory "$pf" --remove
check "--remove again: nothing to do" grep -q "nothing to do" "$tmp/out6"

# --- the admin's own restrictions and milters are kept; --remove keeps them -------------------
postconf -c "$pf" -e "smtpd_recipient_restrictions = reject_non_fqdn_recipient, permit_mynetworks, reject_unauth_destination, reject_unknown_recipient_domain" \
  "smtpd_data_restrictions = reject_unauth_pipelining" "smtpd_milters = inet:127.0.0.1:11332" "milter_default_action = accept"
cp "$pf/main.cf" "$tmp/main.cf.admin"
FAKE_ENABLED="mxguard-policyd mxguard-dkim" run "$tmp/out7" postfix --config-directory "$pf" $P
sed 's/^/  7: /' "$tmp/out7"
check "admin list: the policy service right after reject_unauth_destination" test "$(h smtpd_recipient_restrictions)" = \
  "reject_non_fqdn_recipient, permit_mynetworks, reject_unauth_destination, check_policy_service unix:mxguard/policyd.sock, reject_unknown_recipient_domain"
check "admin DATA list kept, permits and policy appended" test "$(h smtpd_data_restrictions)" = \
  "reject_unauth_pipelining, permit_mynetworks, permit_sasl_authenticated, check_policy_service unix:mxguard/policyd.sock"
check "the admin's milter stays first" test "$(h smtpd_milters)" = "inet:127.0.0.1:11332, { unix:mxguard/dkim.sock, default_action=tempfail }"
check "the admin's milter_default_action = accept is kept" test "$(n milter_default_action)" = "milter_default_action = accept"
run "$tmp/out8" postfix --config-directory "$pf" --remove
check "--remove leaves the admin's settings exactly as they were" cmp -s "$pf/main.cf" "$tmp/main.cf.admin"

# --- explicit list, rate limits --------------------------------------------------------------
pf=$tmp/pf2; stock "$pf"; cp "$pf/main.cf" "$tmp/main.cf.pf2"
run "$tmp/out9" postfix --config-directory "$pf" --dry-run --milters dkim,dmarc,av --policy yes $P
check "--milters LIST: all three in order" grep -q "^+smtpd_milters = { unix:mxguard/dkim.sock, default_action=tempfail }, { unix:mxguard/dmarc.sock, default_action=tempfail }, { unix:mxguard/av.sock, default_action=tempfail }$" "$tmp/out9"
run "$tmp/out10" postfix --config-directory "$pf" --dry-run --milters none --policy yes --ratelimit yes $P
check "ratelimit: the policy service comes before permit_mynetworks" \
  grep -q "^+smtpd_recipient_restrictions = check_policy_service unix:mxguard/policyd.sock, permit_mynetworks" "$tmp/out10"
check "ratelimit: end of data asks the policy service with no permit in front (it counts those senders)" \
  grep -qx "+smtpd_end_of_data_restrictions = check_policy_service unix:mxguard/policyd.sock" "$tmp/out10"
echo "checks = spf, greylist, ratelimit" >"$tmp/policyd-rl.conf"
run "$tmp/out11" postfix --config-directory "$pf" --dry-run --milters none --policy yes --policyd-config "$tmp/policyd-rl.conf"
check "ratelimit auto: read from the policyd config's checks line" grep -q "^+smtpd_end_of_data_restrictions" "$tmp/out11"
run "$tmp/out12" postfix --config-directory "$pf" --milters none --policy yes --ratelimit yes $P
run "$tmp/out13" postfix --config-directory "$pf" --remove
check "ratelimit form: --remove restores the stock file" cmp -s "$pf/main.cf" "$tmp/main.cf.pf2"

# --- a main.cf wired by mxguard-setup 0.1.0 (bare sockets, global settings, DATA unguarded) ---
pf=$tmp/pf3; stock "$pf"; cp "$pf/main.cf" "$tmp/main.cf.pf3"
cp "$pf/main.cf" "$pf/main.cf.mxguard-setup.orig"
postconf -c "$pf" -e "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service unix:mxguard/policyd.sock" \
  "smtpd_data_restrictions = check_policy_service unix:mxguard/policyd.sock" \
  "smtpd_milters = unix:mxguard/dkim.sock" "non_smtpd_milters = unix:mxguard/dkim.sock" \
  "milter_default_action = tempfail" "milter_protocol = 6"
FAKE_ENABLED="mxguard-policyd mxguard-dkim" run "$tmp/out14" postfix --config-directory "$pf" $P
sed 's/^/  14: /' "$tmp/out14"
check "0.1.0 wiring: DATA gets the permits in front" test "$(h smtpd_data_restrictions)" = \
  "permit_mynetworks, permit_sasl_authenticated, check_policy_service unix:mxguard/policyd.sock"
check "0.1.0 wiring: bare milter socket becomes the per-milter form" test "$(h smtpd_milters)" = "{ unix:mxguard/dkim.sock, default_action=tempfail }"
run "$tmp/out15" postfix --config-directory "$pf" --remove
sed 's/^/  15: /' "$tmp/out15"
check "0.1.0 wiring: --remove also drops the global milter settings the original did not have" \
  cmp -s "$pf/main.cf" "$tmp/main.cf.pf3"

# --- the tools mxguard replaces ----------------------------------------------------------------
pf=$tmp/pf4; stock "$pf"
printf 'policyd-spf  unix  -       n       n       -       0       spawn\n    user=policyd-spf argv=/usr/bin/policyd-spf\n' >>"$pf/master.cf"
postconf -c "$pf" -e "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service unix:private/policyd-spf, check_policy_service inet:127.0.0.1:10023" \
  "policyd-spf_time_limit = 3600" \
  "smtpd_milters = local:opendkim/opendkim.sock, inet:localhost:8893, unix:clamav/clamav-milter.ctl" \
  "non_smtpd_milters = \$smtpd_milters"
cp "$pf/main.cf" "$tmp/main.cf.classic"
FAKE_ENABLED="mxguard-policyd mxguard-dkim mxguard-dmarc" run "$tmp/out16" postfix --config-directory "$pf" --dry-run $P &&
  rc=0 || rc=$?
sed 's/^/  16: /' "$tmp/out16"
check "classic stack: --dry-run refuses (exit 1) without --replace" test "$rc" = 1
for t in "postgrey in smtpd_recipient_restrictions (inet:127.0.0.1:10023)" \
         "policyd-spf in smtpd_recipient_restrictions (unix:private/policyd-spf)" \
         "OpenDKIM in smtpd_milters (local:opendkim/opendkim.sock)" \
         "OpenDMARC in smtpd_milters (inet:localhost:8893)" \
         "clamav-milter in smtpd_milters (unix:clamav/clamav-milter.ctl)"; do
  check "--dry-run names $t" grep -qF "found $t" "$tmp/out16"
done
check "clamav-milter is kept while mxguard-av is not wired" grep -qF "found clamav-milter in smtpd_milters (unix:clamav/clamav-milter.ctl): kept" "$tmp/out16"
check "the refusal names the doubled jobs" grep -q "refusing: with these changes mail would get spf greylist dkim dmarc" "$tmp/out16"
FAKE_ENABLED="mxguard-policyd mxguard-dkim mxguard-dmarc" run "$tmp/out17" postfix --config-directory "$pf" $P && rc=0 || rc=$?
check "classic stack: refused without --replace, main.cf unchanged" bash -c "test $rc = 1 && cmp -s $pf/main.cf $tmp/main.cf.classic"
FAKE_ENABLED="mxguard-policyd mxguard-dkim mxguard-dmarc" run "$tmp/out18" postfix --config-directory "$pf" --replace $P
sed 's/^/  18: /' "$tmp/out18"
check "--replace: postgrey and policyd-spf out, ours in, in one step" test "$(h smtpd_recipient_restrictions)" = \
  "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service unix:mxguard/policyd.sock"
check "--replace: OpenDKIM and OpenDMARC out, clamav-milter kept, ours after it" test "$(h smtpd_milters)" = \
  "unix:clamav/clamav-milter.ctl, { unix:mxguard/dkim.sock, default_action=tempfail }, { unix:mxguard/dmarc.sock, default_action=tempfail }"
check "--replace: non_smtpd_milters (was \$smtpd_milters) has no OpenDKIM" bash -c "! postconf -c $pf -x -h non_smtpd_milters | grep -q opendkim"
check "--replace: postconf is still clean (master.cf's policyd-spf service kept)" bash -c "test -z \"\$(postconf -c $pf -n 2>&1 >/dev/null)\""
# Greylisting off in policyd: postgrey is not doubled and stays.
pf=$tmp/pf5; stock "$pf"
postconf -c "$pf" -e "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, check_policy_service inet:127.0.0.1:10023"
echo "checks = spf" >"$tmp/policyd-spf.conf"
FAKE_ENABLED=mxguard-policyd run "$tmp/out19" postfix --config-directory "$pf" --policyd-config "$tmp/policyd-spf.conf"
check "checks = spf: postgrey kept next to mxguard-policyd" test "$(h smtpd_recipient_restrictions)" = \
  "permit_mynetworks, reject_unauth_destination, check_policy_service unix:mxguard/policyd.sock, check_policy_service inet:127.0.0.1:10023"

# --- mxguard-milter: the filters in one milter (issue 17) -----------------------------------
pf=$tmp/pf-combined
stock "$pf"
cp "$pf/main.cf" "$tmp/main.cf.combined-stock"
printf 'filters = dkim, dmarc\n' >"$tmp/milter.conf"
M="--milter-config $tmp/milter.conf"
FAKE_ENABLED="mxguard-policyd mxguard-milter" run "$tmp/outc1" postfix --config-directory "$pf" $P $M
sed 's/^/  c1: /' "$tmp/outc1"
check "mxguard-milter enabled: auto wires it, with the reason" \
  grep -q "^mxguard-setup: milter: wiring mxguard-milter (mxguard-milter.service is enabled)" "$tmp/outc1"
check "it names the filters of its config" grep -q "^mxguard-setup: milter: mxguard-milter runs: dkim dmarc" "$tmp/outc1"
check "smtpd_milters: the one socket, default_action=tempfail" test "$(h smtpd_milters)" = \
  "{ unix:mxguard/milter.sock, default_action=tempfail }"
check "non_smtpd_milters: the one socket too (the signer is in it)" test "$(h non_smtpd_milters)" = \
  "{ unix:mxguard/milter.sock, default_action=tempfail }"
# A separate milter left enabled is not wired beside it (it would sign or scan twice).
FAKE_ENABLED="mxguard-policyd mxguard-milter mxguard-dkim" run "$tmp/outc2" postfix --config-directory "$pf" $P $M
check "a separate milter still enabled: warned about, not wired" bash -c \
  "grep -q 'warning: mxguard-dkim is there too' $tmp/outc2 && grep -q 'nothing to do' $tmp/outc2"
# Switching back: --separate wires the separate daemons in place of the one socket.
FAKE_ENABLED="mxguard-policyd mxguard-milter mxguard-dkim mxguard-dmarc" \
  run "$tmp/outc3" postfix --config-directory "$pf" $P $M --separate
check "--separate: the separate milters replace the one socket" test "$(h smtpd_milters)" = \
  "{ unix:mxguard/dkim.sock, default_action=tempfail }, { unix:mxguard/dmarc.sock, default_action=tempfail }"
run "$tmp/outc4" postfix --config-directory "$pf" $P $M --combined --policy no
check "--combined: the one socket again, whatever is enabled" test "$(h smtpd_milters)" = \
  "{ unix:mxguard/milter.sock, default_action=tempfail }"
run "$tmp/outc5" postfix --config-directory "$pf" --remove
check "--remove takes the one socket out too: the stock file again" cmp -s "$pf/main.cf" "$tmp/main.cf.combined-stock"
# A classic signer wired: mxguard-milter's dkim filter would sign twice.
postconf -c "$pf" -e "smtpd_milters = inet:localhost:8891"
run "$tmp/outc6" postfix --config-directory "$pf" $P $M --combined --policy no && rc=0 || rc=$?
check "--combined with OpenDKIM wired: refused without --replace" bash -c \
  "test $rc = 1 && grep -q 'found OpenDKIM' $tmp/outc6"

# --- refusals ------------------------------------------------------------------------------------
pf=$tmp/pf6; stock "$pf"
echo "broken line" >>"$pf/main.cf"
run "$tmp/out20" postfix --dry-run --config-directory "$pf" --policy yes && rc=0 || rc=$?
check "refuses a broken main.cf (exit 1)" test "$rc" = 1
run "$tmp/out21" postfix --dry-run --config-directory "$tmp/none" && rc=0 || rc=$?
check "refuses a missing main.cf (exit 1)" test "$rc" = 1
run "$tmp/out22" postfix --bogus && rc=0 || rc=$?
check "usage error (exit 64)" test "$rc" = 64

echo "setup test: $failures failure(s)"
[ "$failures" = 0 ]
