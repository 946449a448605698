#!/usr/bin/env bash
# Builds wsgate's Debian packages (wsgate, libapache2-mod-wsgate,
# wsgate-dev) with dpkg-buildpackage and debhelper, and the Python SDK's
# wheel, into DIR (default dist/).
#
# The Go modules are downloaded first (go mod download, from the module
# proxy); the package build itself runs with GOPROXY=off, from the module
# cache. Go 1.26 comes from PATH: Debian 12's golang-go is too old.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist}")
version=$(cat VERSION)
if [ "$(dpkg-parsechangelog -SVersion)" != "$version" ]; then
  echo "packages.sh: debian/changelog is at $(dpkg-parsechangelog -SVersion), VERSION at $version" >&2
  exit 1
fi
go mod download
export GOMODCACHE GOCACHE
GOMODCACHE=$(go env GOMODCACHE)
GOCACHE=$(go env GOCACHE)
export COMMIT DIRTY
COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
DIRTY=$([ -n "$(git status --porcelain 2>/dev/null)" ] && echo true || true)

# dpkg-buildpackage writes next to the source tree: build in a copy of
# the files git knows (tracked, or new and not ignored).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/wsgate-$version"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || [ -L "$f" ] || continue # deleted, not yet committed
  mkdir -p "$src/$(dirname "$f")"
  cp -P "$f" "$src/$f"
done
(cd "$src" && dpkg-buildpackage --build=binary --no-sign)

mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out"/*.whl
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/

# The Python SDK: a wheel, built by its own in-tree backend (no pip, no
# index).
python3 -c 'import sys; sys.path.insert(0, "sdk/python/_build"); import wsgate_build; print(wsgate_build.build_wheel(sys.argv[1]))' "$out" >/dev/null
ls -1 "$out"
