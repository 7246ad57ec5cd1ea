# shellcheck shell=bash
# Sourced by tests/fresh-machine.sh and packaging/test-walk.sh: the Debian mirror this
# machine's apt uses, for a debootstrap'd bookworm of our own, and that machine's apt sources.
# Sets debian_entries ("URI SUITE COMPONENTS" lines), mirror, and apt_http_proxy,
# apt_https_proxy, apt_valid_until, apt_check_date; exits if there is no mirror for $suite.
# Defines debian_apt_config ROOT, which writes ROOT's sources.list and apt.conf.d entry.
: "${suite:=bookworm}"

# Prints "URI SUITE COMPONENTS..." for every enabled "deb" entry of apt's sources, one-line
# (sources.list, *.list) and deb822 (*.sources) alike.
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -E 's/#.*//; s/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 {
      line = $2 " " $3; for (i = 4; i <= NF; i++) line = line " " $i; print line }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   nu, ns, u, s, uris, suites) {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
          nu = split(uris_, uris, " "); ns = split(suites_, suites, " ")
          for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) print uris[u], suites[s], comps
        }
        types = uris_ = suites_ = comps = enabled = ""
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ +/, "")
        if (key == "types") types = $0; else if (key == "uris") uris_ = $0
        else if (key == "suites") suites_ = $0; else if (key == "components") comps = $0
        else if (key == "enabled") enabled = $0 }
      END { flush() }' "$f"
  done
}

# Debian's own suites of the release (no backports), as this machine has them.
mapfile -t debian_entries < <(apt_sources | awk -v s="$suite" '
  $2 == s || $2 == s "-updates" || $2 == s "-security" || $2 == s "/updates" { print }')
mirror=$(printf '%s\n' "${debian_entries[@]}" | awk -v s="$suite" '$2 == s { print $1; exit }')
if [ -z "$mirror" ]; then
  echo "${0##*/}: no '$suite' entry in /etc/apt/sources.list or /etc/apt/sources.list.d/" >&2
  exit 1
fi
# How this machine's apt reaches the mirror, for the chroot's apt: a proxy, and whether it
# accepts Release files past their Valid-Until (a mirror serving a dated snapshot). Neither
# changes which packages are installed.
apt_http_proxy="" apt_https_proxy="" apt_valid_until="" apt_check_date=""
eval "$(apt-config shell apt_http_proxy Acquire::http::Proxy apt_https_proxy Acquire::https::Proxy \
  apt_valid_until Acquire::Check-Valid-Until/b apt_check_date Acquire::Check-Date/b)"

# debian_apt_config ROOT: ROOT's apt sources are this machine's Debian entries (release,
# updates, security), as an installed bookworm has them, with this machine's proxy and
# Valid-Until settings.
debian_apt_config() {
  local root=$1 e uri s comps conf=$1/etc/apt/apt.conf.d/00fresh-machine
  : >"$root/etc/apt/sources.list" || return 1
  for e in "${debian_entries[@]}"; do
    read -r uri s comps <<<"$e"
    echo "deb $uri $s ${comps:-main}" >>"$root/etc/apt/sources.list"
  done
  rm -f "$root/etc/apt/sources.list.d/"*.list "$root/etc/apt/sources.list.d/"*.sources
  {
    [ -z "$apt_http_proxy" ] || echo "Acquire::http::Proxy \"$apt_http_proxy\";"
    [ -z "$apt_https_proxy" ] || echo "Acquire::https::Proxy \"$apt_https_proxy\";"
    [ "$apt_valid_until" != false ] || echo 'Acquire::Check-Valid-Until "false";'
    [ "$apt_check_date" != false ] || echo 'Acquire::Check-Date "false";'
  } >"$conf" || return 1
  [ -s "$conf" ] || rm -f "$conf"
}
