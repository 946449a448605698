#!/usr/bin/env bash
# Runs every wsgate test. On a fresh Debian machine with Go, it first
# installs the packages the tests use as real peers: Python's websockets and
# headless Chromium (with apt-get, through sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
/usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Tests that need a peer fail instead of skipping when it is missing.
export WSGATE_REQUIRE_PEERS=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt'ed:"; echo "$unformatted"; exit 1
fi
go vet ./...
(cd bench && go vet ./...)
go test -race -count=1 -timeout 15m ./...
# The Python producer SDK's own tests (it is also tested through the
# gateway by the Go tests above).
(cd sdk/python && /usr/bin/python3 -m unittest discover -s tests -t . -q)
