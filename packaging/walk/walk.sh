#!/bin/bash
# The README.Debian walk, inside the container that packaging/test-walk.sh boots: a Debian
# bookworm with a stock "Internet Site" Postfix, Redis and systemd as PID 1, no network but its
# own loopback. Runs as walk.service once the system is up, does what README.Debian tells an
# admin to do, in its order, with the real commands (systemctl, mxguard-setup, postfix reload,
# apt-get purge), and after each stage sends mail with swaks and looks for it in a mailbox.
# Every command and its output go to /out/walk.log; the verdict ("PASS" or "FAIL N") goes to
# /out/result. Powers the container off when done. Never run it outside that container.
#
# What is test harness here and not an admin step: a DNS server on 127.0.0.1:53 (the zone of
# the example domains), 198.18.5.1 on lo as the "outside" client, and greylist-delay = 2s in a
# policyd.conf.d drop-in so that a greylisted retry does not wait five minutes.
set -uo pipefail
walk=/walk            # read-only: this script, the .deb, the DNS server, the DKIM helper
out=/out
run_dir=/run/walk
mkdir -p "$run_dir"
exec >"$out/walk.log" 2>&1
last=$run_dir/last    # the output of the latest run
failures=0
dns_pid=""

finish() {
  [ -z "$dns_pid" ] || kill "$dns_pid" 2>/dev/null
  echo
  if [ "$failures" = 0 ]; then echo PASS >"$out/result"; echo "walk: every check passed"
  else echo "FAIL $failures" >"$out/result"; echo "walk: $failures check(s) FAILED"; fi
  systemctl poweroff --no-block 2>/dev/null || true
}
trap finish EXIT

stage() { printf '\n==== %s\n' "$*"; }
# run COMMAND...: prints the command and its output (indented) and returns its status.
run() {
  local rc=0
  printf '\n#'; printf ' %q' "$@"; echo
  "$@" >"$last" 2>&1 || rc=$?
  sed 's/^/  | /' "$last"
  [ "$rc" = 0 ] || echo "  (exit $rc)"
  return "$rc"
}
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
said() { grep -qE -- "$1" "$last"; }  # said ERE: the latest output has a line matching ERE

# send TAG CLIENT-IP MAIL-FROM [SWAKS-ARGS...]: one message to walk@localhost from CLIENT-IP,
# Subject "walk TAG" (unless --data gives the whole message). Returns swaks' status.
send() {
  local tag=$1 ip=$2 from=$3
  shift 3
  run swaks --server 127.0.0.1:25 --local-interface "$ip" --helo "${helo:-localhost}" \
    --from "$from" --to walk@localhost --header "Subject: walk $tag" "$@"
}
# message TAG: the delivered message with Subject "walk TAG" from walk's mailbox, into
# $run_dir/TAG.eml (without the mbox From_ line); waits up to 30 s for it.
message() {
  local _
  for _ in $(seq 150); do
    if [ -f /var/mail/walk ]; then
      awk -v t="Subject: walk $1" '
        function flush() { if (hit) printf "%s", buf; buf = ""; hit = 0 }
        /^From / { flush(); next }
        { buf = buf $0 "\n"; if ($0 == t) hit = 1 }
        END { flush() }' /var/mail/walk >"$run_dir/$1.eml"
      [ -s "$run_dir/$1.eml" ] && return 0
    fi
    sleep 0.2
  done
  echo "  (no message 'walk $1' in /var/mail/walk after 30 s; mail log:)"
  journalctl -q -u postfix@- -u postfix --no-pager -n 15 2>/dev/null | sed 's/^/  | /'
  tail -n 15 /var/log/mail.log 2>/dev/null | sed 's/^/  | /'
  return 1
}
delivered() {  # delivered TAG: check that message TAG arrived, and show its headers
  if message "$1"; then
    ok "message 'walk $1' delivered to /var/mail/walk"
    sed -n '1,/^$/p' "$run_dir/$1.eml" | sed 's/^/  > /'
  else
    bad "message 'walk $1' delivered to /var/mail/walk"
  fi
}
has_header() {  # has_header TAG ERE: a header line of delivered message TAG matches ERE
  sed -n '1,/^$/p' "$run_dir/$1.eml" | grep -qE -- "$2"
}
wired() { postconf -n | grep -q mxguard; }
postfix_reload() { run postfix reload && sleep 1; }
active() { systemctl is-active --quiet "$1"; }

# --- harness: the outside client's address and the example domains' DNS ----------------------
stage "harness: 198.18.5.1 on lo (the outside client), DNS on 127.0.0.1:53"
ip addr add 198.18.5.1/32 dev lo
outside=198.18.5.1
cat /etc/resolv.conf
start_dns() {
  [ -z "$dns_pid" ] || { kill "$dns_pid"; wait "$dns_pid" 2>/dev/null; }
  rm -f "$run_dir/dns.port"
  /usr/bin/python3 "$walk/dns_server.py" --zone "$run_dir/zone" --address 127.0.0.1 --port 53 \
    --port-file "$run_dir/dns.port" >>"$run_dir/dns.log" 2>&1 &
  dns_pid=$!
  for _ in $(seq 100); do [ -s "$run_dir/dns.port" ] && return 0; sleep 0.1; done
  echo "DNS server did not start:"; cat "$run_dir/dns.log"; return 1
}
# sender.example signs its mail (key made below) and publishes SPF for the outside client;
# dmarc-reject.example publishes p=reject and signs nothing; spf-fail.example allows nobody.
cat >"$run_dir/zone.base" <<'EOF'
$ORIGIN example.
$TTL 60
sender             TXT "v=spf1 ip4:198.18.5.1 -all"
_dmarc.sender      TXT "v=DMARC1; p=reject"
spf-fail           TXT "v=spf1 -all"
dmarc-reject       TXT "v=spf1 ip4:198.18.5.1 -all"
_dmarc.dmarc-reject TXT "v=DMARC1; p=reject"
$ORIGIN example.org.
_dmarc             TXT "v=DMARC1; p=none"
EOF

# --- 0. the stock system ------------------------------------------------------------------------
stage "0. stock Debian: Postfix 'Internet Site', nothing of mxguard"
run systemctl is-system-running
run postconf -n
check "postfix is running" active postfix
check "redis-server is running" active redis-server
send stock 127.0.0.1 walk@localhost
delivered stock

# --- install ---------------------------------------------------------------------------------
stage "install: dpkg -i mxguard.deb"
run dpkg -i "$walk"/mxguard_*.deb
check "dpkg -i succeeded" [ "$(dpkg-query -W -f='${Status}' mxguard)" = "install ok installed" ]
run systemctl is-enabled mxguard-policyd mxguard-dkim mxguard-dmarc mxguard-av
check "no mxguard unit is enabled or running after installation" \
  bash -c '! systemctl is-active --quiet mxguard-policyd mxguard-dkim mxguard-dmarc mxguard-av'
check "main.cf is untouched by installation" bash -c '! postconf -n | grep -q mxguard'
run wc -l /etc/mxguard/policyd.conf /etc/mxguard/dkim.conf /etc/mxguard/dmarc.conf
# The outside sender's DKIM key (harness: its own domain's key, published in the zone).
mkdir -p "$run_dir/ext"
mxguard-keygen --domain sender.example --selector ext --dir "$run_dir/ext" >/dev/null
{ cat "$run_dir/zone.base"; echo "\$ORIGIN sender.example."; cat "$run_dir/ext/ext.txt"; } \
  >"$run_dir/zone"
start_dns || bad "the harness DNS server started"

# --- README.Debian 1-4: mxguard-policyd ----------------------------------------------------
stage "README.Debian 1-3: mxguard-policyd (Redis is the redis-server package's)"
run mxguard-policyd --check-config
check "mxguard-policyd --check-config" [ $? = 0 ]
run systemctl enable --now mxguard-policyd
check "systemctl enable --now mxguard-policyd" active mxguard-policyd
run systemctl show -p Type -p NotifyAccess -p WatchdogUSec -p MainPID -p ActiveState -p SubState mxguard-policyd
check "the unit is Type=notify and was told READY (active/running)" said '^SubState=running$'
run ls -l /var/spool/postfix/mxguard

stage "README.Debian 4: mxguard-setup postfix --dry-run, then mxguard-setup postfix && postfix reload"
run mxguard-setup postfix --dry-run
check "--dry-run changed nothing" bash -c '! postconf -n | grep -q mxguard'
run mxguard-setup postfix
check "mxguard-setup postfix succeeded" [ $? = 0 ]
check "it wired the policy service" said 'policyd'
check "it skipped dkim, dmarc and av (not enabled, not running), and said so" \
  bash -c "grep -q 'dkim: skipped' '$last' && grep -q 'dmarc: skipped' '$last' && grep -q 'av: skipped' '$last'"
postfix_reload
run postconf -n smtpd_recipient_restrictions smtpd_data_restrictions smtpd_milters non_smtpd_milters
check "no milter is wired" bash -c '! postconf -h smtpd_milters non_smtpd_milters | grep -q mxguard'

stage "mail with mxguard-policyd (checks = spf, greylist)"
send local-1 127.0.0.1 walk@localhost
check "local mail is accepted (mynetworks before the policy service)" [ $? = 0 ]
delivered local-1
helo=sender.example
send spf-fail "$outside" someone@spf-fail.example
check "SPF fail from outside is rejected (550)" said '^<\*\* +550'
send grey-1 "$outside" alice@sender.example
check "a first try from outside is greylisted (450)" said '^<\*\* +450'
# Harness: the retry must not wait greylist-delay's five minutes.
mkdir -p /etc/mxguard/policyd.conf.d
echo "greylist-delay = 2s" >/etc/mxguard/policyd.conf.d/walk.conf
run mxguard-policyd --check-config && run systemctl reload mxguard-policyd
check "systemctl reload mxguard-policyd (drop-in read)" active mxguard-policyd
sleep 3
send grey-2 "$outside" alice@sender.example
check "the retry after greylist-delay is accepted" [ $? = 0 ]
delivered grey-2
check "it carries Received-SPF: Pass" has_header grey-2 '^Received-SPF: [Pp]ass '

# --- DKIM and DMARC -------------------------------------------------------------------------
stage "README.Debian DKIM: keys, dkim.conf, enable mxguard-dkim"
run mxguard-keygen --domain example.org --selector s2026 --dir /etc/mxguard/keys --user mxguard
run ls -l /etc/mxguard/keys
# "publish the record": into the harness zone.
{ cat "$run_dir/zone"; echo "\$ORIGIN example.org."; cat /etc/mxguard/keys/s2026.txt; } >"$run_dir/zone.new"
mv "$run_dir/zone.new" "$run_dir/zone"
start_dns || bad "the harness DNS server restarted"
run mxguard-keygen --domain example.org --selector s2026 --key-file /etc/mxguard/keys/s2026.private test
check "mxguard-keygen test: the published record matches the key" [ $? = 0 ]
printf 'domain = example.org\nselector = s2026\nkey-file = /etc/mxguard/keys/s2026.private\n' \
  >>/etc/mxguard/dkim.conf
run tail -n 3 /etc/mxguard/dkim.conf
run mxguard-dkim --check-config && run systemctl enable --now mxguard-dkim
check "mxguard-dkim is running" active mxguard-dkim

stage "README.Debian DMARC: enable mxguard-dmarc, then mxguard-setup postfix && postfix reload"
run mxguard-dmarc --check-config && run systemctl enable --now mxguard-dmarc
check "mxguard-dmarc is running" active mxguard-dmarc
run mxguard-setup postfix
check "mxguard-setup wired dkim and dmarc" bash -c \
  "postconf -h smtpd_milters | grep -q 'mxguard/dkim.sock' && postconf -h smtpd_milters | grep -q 'mxguard/dmarc.sock'"
check "each with its own default_action=tempfail, milter_default_action untouched" bash -c \
  "postconf -h smtpd_milters | grep -q 'default_action=tempfail' && ! postconf -n | grep -q '^milter_default_action'"
check "av is still skipped (not enabled)" said 'av: skipped'
postfix_reload
run postconf -n smtpd_milters non_smtpd_milters

stage "mail with policyd, dkim and dmarc"
helo=localhost send signed-local 127.0.0.1 alice@example.org --h-From "Alice <alice@example.org>"
delivered signed-local
check "local mail from example.org is DKIM-signed (d=example.org, s=s2026)" \
  has_header signed-local '^DKIM-Signature:.*d=example\.org'
run dkimverify <"$run_dir/signed-local.eml"
check "python3-dkim verifies the signature against the published record (DNS)" said 'signature ok'
# An outside message signed by sender.example, through the greylist triplet passed above.
printf 'From: Alice <alice@sender.example>\nTo: walk@localhost\nSubject: walk signed-outside\nDate: %s\nMessage-ID: <walk-signed-outside@sender.example>\n\nSigned outside.\n' \
  "$(date -R)" >"$run_dir/outside.eml"
/usr/bin/python3 "$walk/dkim_tool.py" sign "$run_dir/outside.eml" "$run_dir/ext/ext.private" ext sender.example rsa \
  >"$run_dir/outside-signed.eml"
send signed-outside "$outside" alice@sender.example --data "@$run_dir/outside-signed.eml"
check "a signed message from outside is accepted" [ $? = 0 ]
delivered signed-outside
check "mxguard-dkim verified it: dkim=pass header.d=sender.example" \
  has_header signed-outside 'dkim=pass.*header\.d=sender\.example'
check "mxguard-dmarc passed it: dmarc=pass" has_header signed-outside 'dmarc=pass'
send dmarc-reject "$outside" alice@sender.example --h-From "Mallory <m@dmarc-reject.example>"
check "From: a p=reject domain, unsigned and unaligned, is rejected (550 5.7.1)" said '^<\*\* +550 5\.7\.1'

# A milter of ours that is down defers mail (default_action=tempfail): nothing is lost.
run systemctl stop mxguard-dmarc
send dmarc-down "$outside" alice@sender.example
check "with mxguard-dmarc stopped, mail is deferred (451 4.7.1), not accepted unchecked" said '^<\*\* +451 4\.7\.1'
run systemctl start mxguard-dmarc
check "mxguard-dmarc started again" active mxguard-dmarc
run systemctl reload mxguard-dkim
check "systemctl reload mxguard-dkim (--check-config, then SIGUSR1): still running" active mxguard-dkim
run journalctl -q --no-pager -u mxguard-dkim -u mxguard-dmarc -u mxguard-policyd -n 12
run bash -c 'for u in mxguard-policyd mxguard-dkim mxguard-dmarc; do systemd-analyze security --no-pager "$u" | tail -n 1 | sed "s/^/$u: /"; done'

# --- mxguard-milter: the same filters behind one socket (issue 17) --------------------------
stage "one milter: disable mxguard-dkim and -dmarc, enable mxguard-milter, mxguard-setup postfix"
# No clamd here: the chain runs the two filters that run above (filters = dkim, dmarc).
sed -i 's/^#\?filters = .*/filters = dkim, dmarc/' /etc/mxguard/milter.conf
run grep -E '^(filters|listen|user) ' /etc/mxguard/milter.conf
run mxguard-milter --check-config
check "mxguard-milter --check-config (reads dkim.conf and dmarc.conf)" [ $? = 0 ]
run systemctl disable --now mxguard-dkim mxguard-dmarc
run systemctl enable --now mxguard-milter
check "mxguard-milter is running (Type=notify)" active mxguard-milter
run mxguard-setup postfix
check "mxguard-setup wired the one socket (auto: mxguard-milter is enabled)" bash -c \
  "test \"\$(postconf -h smtpd_milters)\" = '{ unix:mxguard/milter.sock, default_action=tempfail }'"
postfix_reload
helo=localhost send combined-local 127.0.0.1 alice@example.org --h-From "Alice <alice@example.org>"
delivered combined-local
run dkimverify <"$run_dir/combined-local.eml"
check "mxguard-milter signs local mail; python3-dkim verifies it" said 'signature ok'
# The outside message again under its own subject, signed anew.
sed 's/^Subject: walk signed-outside$/Subject: walk combined-outside/' "$run_dir/outside.eml" >"$run_dir/outside2.eml"
/usr/bin/python3 "$walk/dkim_tool.py" sign "$run_dir/outside2.eml" "$run_dir/ext/ext.private" ext sender.example rsa \
  >"$run_dir/combined-outside.eml"
send combined-outside "$outside" alice@sender.example --data "@$run_dir/combined-outside.eml"
delivered combined-outside
check "one Authentication-Results header, with dkim=pass and dmarc=pass" bash -c \
  "test \"\$(sed -n '1,/^\$/p' '$run_dir/combined-outside.eml' | grep -c '^Authentication-Results:')\" = 1 &&
   sed -n '1,/^\$/p' '$run_dir/combined-outside.eml' | tr -d '\n' | grep -q 'dkim=pass header.d=sender.example.*dmarc=pass'"
send combined-reject "$outside" alice@sender.example --h-From "Mallory <m@dmarc-reject.example>"
check "mxguard-milter rejects the p=reject forgery (550 5.7.1)" said '^<\*\* +550 5\.7\.1'
run systemctl reload mxguard-milter
check "systemctl reload mxguard-milter: still running" active mxguard-milter

# --- mxguard-setup postfix --remove ---------------------------------------------------------
stage "unwire: mxguard-setup postfix --remove && postfix reload"
run mxguard-setup postfix --remove
postfix_reload
run postconf -n
check "main.cf names nothing of mxguard" bash -c '! postconf -n | grep -q mxguard'
check "main.cf is the stock file again (mxguard-setup's .orig)" \
  cmp /etc/postfix/main.cf /etc/postfix/main.cf.mxguard-setup.orig
send removed-local 127.0.0.1 walk@localhost
delivered removed-local
check "no DKIM signature after --remove" bash -c "! grep -q '^DKIM-Signature' '$run_dir/removed-local.eml'"
send removed-outside "$outside" bob@sender.example
check "outside mail is accepted at once (no greylisting)" [ $? = 0 ]
delivered removed-outside

# --- purge ----------------------------------------------------------------------------------
stage "purge: mxguard-setup postfix && postfix reload, then apt-get purge mxguard"
run mxguard-setup postfix && postfix_reload
check "wired again before the purge" wired
run apt-get purge -y mxguard
check "apt-get purge mxguard succeeded" [ "$(dpkg-query -W -f='${Status}' mxguard 2>/dev/null || echo gone)" != "install ok installed" ]
check "the purge said it unwired main.cf" said 'unwired /etc/postfix/main\.cf'
run postconf -n
check "main.cf names nothing of mxguard after the purge" bash -c '! postconf -n | grep -q mxguard'
check "no mxguard unit is running" bash -c '! systemctl is-active --quiet mxguard-policyd mxguard-dkim mxguard-dmarc'
check "the socket directory is gone" [ ! -e /var/spool/postfix/mxguard ]
check "the admin's DKIM key is kept" [ -f /etc/mxguard/keys/s2026.private ]
postfix_reload
send purged-local 127.0.0.1 walk@localhost
delivered purged-local
send purged-outside "$outside" carol@sender.example
check "outside mail is accepted after the purge" [ $? = 0 ]
delivered purged-outside
run postqueue -p
check "nothing is left deferred in the queue" said 'Mail queue is empty'
