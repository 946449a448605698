#!/usr/bin/env bash
# Runs every wsgate test. On a fresh Debian machine with Go, it first
# installs what the tests use as real peers, with apt-get (through sudo when
# not root): Python's websockets, headless Chromium, Apache httpd with
# apxs (apache2-dev) and make, which build and run mod_wsgate, and
# Prometheus's promtool, which checks the metrics both serve, and
# nats-server, the cluster bus's broker, pkg-config for libapachews's
# producers, php-cli for the PHP SDK, php-cgi for the PHP chat
# that mod_wsgate serves through subrequests, and OpenSSL's s_client, a
# TLS 1.3 peer for the record layer the daemon takes over.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
/usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
# PyJWT: the GRIP application that checks Grip-Sig as the GRIP libraries do,
/usr/bin/python3 -c 'import jwt' 2>/dev/null || need+=(python3-jwt)
# ... and the independent token issuer of the JWT tests (RSA, EC and
# Ed25519 keys need python3-cryptography, only a Recommends of python3-jwt).
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
command -v chromium >/dev/null || need+=(chromium)
[ -x /usr/sbin/apache2 ] || need+=(apache2)
command -v apxs >/dev/null || need+=(apache2-dev)
command -v make >/dev/null || need+=(make)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v php >/dev/null || need+=(php-cli)
command -v php-cgi >/dev/null || need+=(php-cgi)
command -v cc >/dev/null || need+=(gcc)
command -v promtool >/dev/null || need+=(prometheus)
command -v openssl >/dev/null || need+=(openssl)
# nginx: the README's set-up in front of the daemon (TestBehindNginx) and
# the bench's attack harness.
[ -x /usr/sbin/nginx ] || need+=(nginx)
# stress-ng keeps both CPUs busy where a test must hold under load.
command -v stress-ng >/dev/null || need+=(stress-ng)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || need+=(nats-server)
# The package test (scripts/test-packages.sh).
command -v dpkg-buildpackage >/dev/null || need+=(dpkg-dev)
command -v dh >/dev/null || need+=(debhelper)
command -v lintian >/dev/null || need+=(lintian)
command -v go-md2man >/dev/null || need+=(go-md2man)
command -v man >/dev/null || need+=(man-db)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v pkill >/dev/null || need+=(procps)
# The admin listener's tests: htpasswd -B makes the bcrypt file, and ip a
# network namespace with an address that is not loopback.
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v ip >/dev/null || need+=(iproute2)
# Node.js and npm, for Node's ws as an upstream of the proxy.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # Installing apache2 (or prometheus, nats-server, nginx) would start the system's service;
  # the tests run their own on loopback, so services are not started.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null
    $sudo chmod +x $policy
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$policy" ] || $sudo rm -f "$policy"
fi

# Tests that need a peer fail instead of skipping when it is missing.
export WSGATE_REQUIRE_PEERS=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt'ed:"; echo "$unformatted"; exit 1
fi
go vet ./...
(cd bench && go vet ./...)
# staticcheck, at a pinned version, from the Go module proxy.
staticcheck="go run honnef.co/go/tools/cmd/staticcheck@v0.8.2"
$staticcheck ./...
(cd bench && $staticcheck ./...)
# Node's ws, an upstream of the proxy's tests, from the npm registry at the
# version package-lock.json pins.
(cd apps/upstream/testdata/node && npm ci --silent --no-audit --no-fund)
go test -race -count=1 -timeout 15m ./...
# wsgate's TLS record layer against crypto/tls: the fuzzer for a fixed
# budget, then the takeover's tests on the newest Go release the module
# proxy serves (a change in crypto/tls shows up there first).
go test -run '^$' -fuzz FuzzDifferential -fuzztime 20s ./frontdoor/tlsrec
./scripts/test-tls-go.sh
# The Python producer SDK's own tests (it is also tested through the
# gateway by the Go tests above).
(cd sdk/python && /usr/bin/python3 -m unittest discover -s tests -t . -q)
# The benchmark harness: its own tests, then its quick mode, a smoke test
# that every server and scenario still runs (the figures mean nothing).
(cd bench && go test -race -count=1 ./... && go run ./cmd/bench -quick)
# The Debian packages and the SDKs' installs: build, lintian, install, run,
# purge (it installs and removes packages on this machine).
./scripts/test-packages.sh
