#!/bin/bash
# Builds mxguard_<version>_<arch>.deb with dpkg-buildpackage from a scratch copy of the source
# tree, where packaging/debian becomes debian/ (the repository root keeps no debian/ of its
# own). Must never write into the source tree except the output directory.
#
#   packaging/build-deb.sh [OUTDIR]      (default OUTDIR: build/deb)
# Environment: MXGUARD_JOBS (parallel jobs, default 2); MXGUARD_DEB_CCACHE=1 compiles through
# ccache (CI: packaging/test.sh sets it; the fixed work directory keeps the cache valid).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/deb}
jobs=${MXGUARD_JOBS:-2}

# The package version is the CMake project version: refuse to build if they disagree.
cmake_version=$(sed -nE 's/^project\(mxguard VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
if [ "${deb_version%%-*}" != "$cmake_version" ]; then
  echo "build-deb: packaging/debian/changelog says $deb_version, CMakeLists.txt $cmake_version" >&2
  exit 1
fi

# A fixed work directory under OUTDIR: dpkg-buildpackage writes the .deb next to the tree,
# and compiler caches see the same paths each time.
mkdir -p "$out"
work=$(cd "$out" && pwd)/work
rm -rf "$work"
src=$work/mxguard-$cmake_version
mkdir -p "$src"
# Tracked and new (not ignored) files: the tree as it is, without build directories (files
# deleted but not yet committed are skipped).
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
    tar --null -T - -cf -) | tar -C "$src" -xf -
else
  tar -C "$root" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -r "$src/packaging/debian" "$src/debian"

echo "build-deb: building in $src"
if [ "${MXGUARD_DEB_CCACHE:-0}" = 1 ] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
  # debhelper points HOME into the build tree; keep the cache beside the build directories.
  export CCACHE_DIR=${CCACHE_DIR:-$root/build/ccache}
fi
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
  tail -n 40 "$work/build.log"; echo "build-deb: dpkg-buildpackage failed" >&2; exit 1; }

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
cp "$work/mxguard_${deb_version}_${arch}.deb" "$work/mxguard_${deb_version}_${arch}.changes" \
  "$work/mxguard_${deb_version}_${arch}.buildinfo" "$out/"
cp "$work/build.log" "$out/build.log"
for f in "$work"/mxguard-dbgsym_*.deb; do [ -e "$f" ] && cp "$f" "$out/"; done
rm -rf "$work"
echo "$out/mxguard_${deb_version}_${arch}.deb"
