#!/usr/bin/env bash
# Runs the tests that hold wsgate's own TLS record layer (record_layer:
# wsgate) to crypto/tls on another Go: the takeover, the differential
# comparison with crypto/tls on random record streams, and the daemon's
# interop tests over wss. The takeover relies on crypto/tls behaviour that
# Go does not document (when the key log is written, that a timeout leaves
# a connection usable, when tickets are sent); a new release that changes
# it must show up here as a declined takeover, not as a broken connection.
#
#   scripts/test-tls-go.sh                  # the newest release the module proxy serves (below)
#   GOTOOLCHAIN=go1.27.3 scripts/test-tls-go.sh
#   GO=gotip scripts/test-tls-go.sh         # tip: go install golang.org/dl/gotip@latest && gotip download
#
# Set WSGATE_TLS_DIFF_STREAMS for more random streams (default 300), and
# run the fuzzer for longer by hand:
#   go test -run '^$' -fuzz FuzzDifferential -fuzztime 10m ./frontdoor/tlsrec
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [ "$GO" = go ]; then
  export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
fi
echo "test-tls-go.sh: $($GO version)"
$GO test -race -count=1 ./frontdoor/tlsrec ./frontdoor/netconn
$GO test -race -count=1 -run 'TestPythonPeer|TestRecordLayerSwitch|TestDemoPageInChromium|TestTLSListener|TestTLSRefusedAtAccept' ./frontdoor/daemon
