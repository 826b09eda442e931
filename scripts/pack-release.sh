#!/usr/bin/env bash
# Packs the built project for the hosts (the Ansible common role ships it):
# package.json, bin/, dist/src/, the dashboard's static files (src/mgmt/public,
# read at run time) and the production node_modules of this
# checkout (better-sqlite3's compiled addon included, so hosts need no
# compiler and no registry). The archive is reproducible (sorted names, fixed
# mtime and owner, gzip without a timestamp): the same build gives the same
# bytes, so Ansible's checksum comparison sees "no change" on a second run.
#
#   scripts/pack-release.sh OUT.tar.gz   # prints "written <sha256>" or "unchanged <sha256>"
#
# Run `npm run build` first. The node_modules must match the hosts' Node ABI
# and glibc (the common role installs the same node binary as the control host's).
set -euo pipefail

out=${1:?usage: pack-release.sh OUT.tar.gz}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -f dist/src/cli/main.js ] || { echo "pack-release: dist/ is not built (npm run build)" >&2; exit 1; }

# npm's view of the tree must be whole (a dependency of package.json missing
# from node_modules would be missing on the hosts too).
npm ls --omit=dev --all >/dev/null 2>&1 || { echo "pack-release: npm ls --omit=dev reports a problem (run npm install): $(npm ls --omit=dev --all 2>&1 | grep -E 'missing|invalid|ERR' | head -3)" >&2; exit 1; }
list=$(mktemp) tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$list" "$tmp"' EXIT
{
  echo package.json
  find bin dist/src src/mgmt/public -type f
  # npm's own view of the production tree (nested packages are listed on their own).
  npm ls --omit=dev --parseable --all 2>/dev/null | grep "^$root/node_modules/" | sed "s|^$root/||" | while read -r pkg; do
    # better-sqlite3's sources and object files are not needed at run time.
    skip=()
    [ "${pkg##*/}" = better-sqlite3 ] && for d in deps src build/deps build/Release/obj build/Release/obj.target build/Release/.deps build/Release/sqlite3.a build/Release/test_extension.node; do
      skip+=(-o -path "$pkg/$d")
    done
    find "$pkg" \( -path "$pkg/node_modules" "${skip[@]}" \) -prune -o \( -type f -o -type l \) -print
  done
} | LC_ALL=C sort -u >"$list"

tar --no-recursion --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+rw,go+r,go-w \
  -cf - -T "$list" | gzip -n -6 >"$tmp"
sum=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$sum" ]; then
  echo "unchanged $sum"
else
  chmod 0644 "$tmp" && mv "$tmp" "$out"
  echo "written $sum"
fi
