#!/bin/sh
# Writes a daemon's shipped config file (/etc/mxguard/<daemon>.conf) and its full reference
# from its own --dump-config, so neither can drift from the binary. The conffile is short: the
# options an admin usually changes (COMMON, a space-separated list) and the package's choices,
# each with its help line; a line '#name = value' shows the default. The reference (FULL, in
# /usr/share/doc/mxguard/examples/) lists every option so. The options given after FULL are the
# package's choices (socket, user, ...) and are written active in both. Must never read the
# build machine's /etc/mxguard.
#
#   gen-config.sh BINARY STAGE OUT FULL COMMON [--option value ...]
#
# STAGE holds the files the package ships in /etc/mxguard (whitelists, ...). --dump-config
# validates, and validation opens the files that defaults name under /etc/mxguard/; for the
# run those options point into a copy of STAGE, and the paths are written back as
# /etc/mxguard/.
set -eu
bin=$1 stage=$2 out=$3 full=$4 common=$5
shift 5

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
file=$(basename "$out")
# render MODE: the option lines of --dump-config, as the conffile ("short": COMMON and the
# package's choices) or the reference ("full": every option).
render() {
  paste -d '\n' "$tmp/defaults" "$tmp/chosen" | awk -v mode="$1" -v common=" $common " '
    NR % 2 == 1 { def = $0; next }
    /^# / { help = $0; next }
    {
      opt = $0; sub(/ *=.*/, "", opt)
      changed = ($0 != def)
      if (mode == "short" && !changed && index(common, " " opt " ") == 0) next
      print ""; print help
      if (!changed) { line = $0; sub(/ +$/, "", line); print "#" line; next }
      d = def; sub(/^[^=]*= ?/, "", d); print "# built-in default: " (d == "" ? "(empty)" : d); print
    }'
}
{
  echo "# /etc/mxguard/$file: configuration of $name."
  echo "#"
  echo "# The options an admin usually changes. A line '#name = value' shows the built-in default;"
  echo "# remove the '#' to change it. The active lines are the Debian package's choices."
  echo "# Durations take ms, s, m, h, d, w; lists are comma-separated."
  echo "# Every option with its help line and default: '$name --dump-config',"
  echo "# $name(8) and /usr/share/doc/mxguard/examples/$file."
  echo "# Drop-ins /etc/mxguard/$file.d/*.conf are read after this file, in name order:"
  echo "# they keep local changes out of this conffile (no question at upgrades)."
  echo "#"
  echo "# Check:  $name --check-config        Apply:  systemctl reload $name"
  render short
} >"$out"
{
  echo "# $file: every option of $name as the Debian package ships it (a reference:"
  echo "# the file in use is /etc/mxguard/$file). Generated from '$name --dump-config'"
  echo "# when the package was built. A line '#name = value' shows the built-in default; the"
  echo "# active lines are the package's choices, each with the built-in default above it."
  render full
} >"$full"

# Every COMMON name must be an option of the daemon (a typo would silently drop it).
for o in $common; do
  grep -q "^$o =" "$tmp/defaults" || { echo "gen-config: $name has no option '$o'" >&2; exit 1; }
done

# The daemon must accept the result (with the staged files in place of /etc/mxguard/).
for f in "$out" "$full"; do
  sed "s|/etc/mxguard/|$tmp/etc/|g" "$f" >"$tmp/check.conf"
  tr '\n' '\0' <"$tmp/staged" | xargs -0 "$bin" -c "$tmp/check.conf" --check-config >/dev/null
done
