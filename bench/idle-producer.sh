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
(cd "$here" && go build -o "$work/load" ./cmd/load)
mkdir "$work/sockets"
"$work/echo" -R "$work/sockets" -n echo -m $((n * 2)) 2>/dev/null &
for _ in $(seq 50); do [ -S "$work/sockets/echo" ] && break; sleep 0.1; done
cat >"$work/mux.yaml" <<YAML
listen: [{address: 127.0.0.1:0}]
admin: {listen: "off"}
server: {max_connections_per_ip: 0}
routes:
  - {path: /mux, backend: {socket: $work/sockets/echo, mode: mux, connections: 2}}
YAML
# hold CONFIG PATH: start the daemon on CONFIG and hold n idle clients on PATH.
hold() {
  "$work/wsgate" -config "$1" 2>"$work/log" &
  local pid=$!
  for _ in $(seq 50); do grep -q 'msg=listening' "$work/log" 2>/dev/null && break; sleep 0.1; done
  local addr
  addr=$(sed -n 's/.*msg=listening address=\([^ ]*\).*/\1/p' "$work/log" | head -1)
  "$work/load" idle -human -url "ws://$addr$2" -pid "$pid" -n "$n"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
cat >"$work/echo.yaml" <<YAML
listen: [{address: 127.0.0.1:0}]
admin: {listen: "off"}
server: {max_connections_per_ip: 0}
routes: [{path: /echo, app: echo}]
YAML
echo "== in-process echo"
hold "$work/echo.yaml" /echo
echo "== one multiplexed producer"
hold "$work/mux.yaml" /mux
echo "producer process RSS: $(grep VmRSS /proc/$(pgrep -f "$work/echo" | head -1)/status | awk '{print $2}') KiB (clients closed)"
