#!/bin/sh
# Fills a man page template: the line "@OPTIONS@" becomes one .TP entry per option of BINARY,
# taken from its --help (the same table the parser and --dump-config use, so the page cannot
# drift from the binary), and @VERSION@ the package version. Reads no config file.
#
#   gen-man.sh BINARY TEMPLATE OUT VERSION
set -eu
bin=$1 template=$2 out=$3 version=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/empty.conf"
"$bin" -c "$tmp/empty.conf" --help | awk '
  function roff(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
  /^      --[a-z0-9-]+( VALUE)?$/ {
    name = substr($1, 3); arg = ($2 == "VALUE") ? " \\fIvalue\\fR" : ""; next }
  name != "" {
    text = $0; sub(/^ +/, "", text)
    def = text; sub(/.*\[default: /, "", def); sub(/\]$/, "", def)
    sub(/ \[default: .*\]$/, "", text)
    print ".TP"; print "\\fB\\-\\-" roff(name) "\\fR" arg
    print roff(text) "."
    print "Default: " (def == "(empty)" ? "empty" : "\\fB" roff(def) "\\fR") "."
    name = "" }' >"$tmp/options"
awk -v opts="$tmp/options" -v version="$version" '
  $0 == "@OPTIONS@" { while ((getline l < opts) > 0) print l; next }
  { gsub(/@VERSION@/, version); print }' "$template" >"$out"
