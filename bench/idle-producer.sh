#!/usr/bin/env bash
# The gateway's memory with N clients (default 10,000) on one multiplexed
# producer, next to the same number on the in-process echo application.
# Usage: bench/idle-producer.sh [clients]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
n=${1:-10000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
(cd "$root" && go build -o "$work/wsgate" ./cmd/wsgate && go build -o "$work/echo" ./examples/producers/echo)
(cd "$here" && go build -o "$work/idle" ./cmd/idle)
mkdir "$work/sockets"
"$work/echo" -R "$work/sockets" -n echo -m $((n * 2)) 2>/dev/null &
for _ in $(seq 50); do [ -S "$work/sockets/echo" ] && break; sleep 0.1; done
cat >"$work/mux.yaml" <<YAML
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /mux, backend: {socket: $work/sockets/echo, mode: mux, connections: 2}}
YAML
echo "== in-process echo"
"$work/idle" -server "$work/wsgate" -n "$n"
echo "== one multiplexed producer"
"$work/idle" -server "$work/wsgate" -n "$n" -config "$work/mux.yaml" -path /mux
echo "producer process RSS: $(grep VmRSS /proc/$(pgrep -f "$work/echo" | head -1)/status | awk '{print $2}') KiB (clients closed)"
