#!/bin/sh
# Writes a daemon's shipped config file (/etc/mxguard/<daemon>.conf) from its own
# --dump-config, so the file lists every option with its help line and its compiled-in default
# and cannot drift from the binary. The options given after OUT are the package's choices
# (socket, user, ...) and are written active; every other option is written commented out with
# its default. Must never read the build machine's /etc/mxguard.
#
#   gen-config.sh BINARY STAGE OUT [--option value ...]
#
# STAGE holds the files the package ships in /etc/mxguard (whitelists, ...). --dump-config
# validates, and validation opens the files that defaults name under /etc/mxguard/; for the
# run those options point into a copy of STAGE, and the paths are written back as
# /etc/mxguard/.
set -eu
bin=$1 stage=$2 out=$3
shift 3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/empty.conf"
mkdir "$tmp/etc"
cp -r "$stage"/. "$tmp/etc/"

# One argument per line: the options whose default names a file under /etc/mxguard/ (from
# --help: "--name VALUE", then "help [default: value]"), pointed at the copy.
"$bin" -c "$tmp/empty.conf" --help | awk -v dir="$tmp/etc/" '
  /^      --[a-z0-9-]+ VALUE$/ { name = substr($1, 3); next }
  name != "" && /\[default: .*\/etc\/mxguard\// {
    d = $0; sub(/.*\[default: /, "", d); sub(/\]$/, "", d); gsub(/\/etc\/mxguard\//, dir, d)
    print "--" name; print d }
  { name = "" }' >"$tmp/staged"
# A default file the package does not ship but the postinst makes (authpolicy's API key, the
# hop secret) gets a placeholder of the right form in the copy, so validation can read it.
while IFS= read -r opt && IFS= read -r path; do
  case $path in *[,\ ]*) continue ;; esac  # a list of files: those are shipped
  [ -e "$path" ] && continue
  case $opt in
    --api-header-file) printf 'X-API-Key: placeholder\n' >"$path" ;;
    --hop-secret-file) printf 'placeholder-placeholder-placeholder\n' >"$path" ;;
    *) : >"$path" ;;
  esac
done <"$tmp/staged"
: >"$tmp/choices"
for a in "$@"; do printf '%s\n' "$a" >>"$tmp/choices"; done

run_dump() {  # run_dump FILE...: --dump-config with the arguments listed in the FILEs
  cat "$@" | tr '\n' '\0' | xargs -0 "$bin" -c "$tmp/empty.conf" --dump-config |
    sed "s|$tmp/etc/|/etc/mxguard/|g"
}
run_dump "$tmp/staged" >"$tmp/defaults"
run_dump "$tmp/staged" "$tmp/choices" >"$tmp/chosen"
if [ "$(wc -l <"$tmp/defaults")" != "$(wc -l <"$tmp/chosen")" ]; then
  echo "gen-config: the two --dump-config outputs differ in length" >&2
  exit 1
fi

name=$(basename "$bin")
{
  echo "# /etc/mxguard/$(basename "$out"): configuration of $name."
  echo "#"
  echo "# Generated from '$name --dump-config' when the package was built: every option is"
  echo "# listed with its help line. A line '#name = value' shows the built-in default; remove"
  echo "# the '#' to change it. The active lines are the Debian package's choices, each with the"
  echo "# built-in default above it. Durations take ms, s, m, h, d, w; lists are comma-separated."
  echo "#"
  echo "# Check:  $name --check-config        Apply:  systemctl reload $name"
  echo "# See $name(8) and mxguard.conf(5)."
  paste -d '\n' "$tmp/defaults" "$tmp/chosen" | awk '
    NR % 2 == 1 { def = $0; next }
    /^# / { print ""; print; next }
    $0 == def { sub(/ +$/, ""); print "#" $0; next }
    { d = def; sub(/^[^=]*= ?/, "", d); print "# built-in default: " (d == "" ? "(empty)" : d); print }'
} >"$out"

# The daemon must accept the result (with the staged files in place of /etc/mxguard/).
sed "s|/etc/mxguard/|$tmp/etc/|g" "$out" >"$tmp/check.conf"
tr '\n' '\0' <"$tmp/staged" | xargs -0 "$bin" -c "$tmp/check.conf" --check-config >/dev/null
