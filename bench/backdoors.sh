#!/usr/bin/env bash
# Echo throughput through a UNIX-socket producer (mux and per-client)
# against the in-process echo application, in one run, interleaved A B C A
# B C, with the same load generator. Usage: bench/backdoors.sh [seconds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

(cd "$root" && go build -o "$work/wsgate" ./cmd/wsgate && go build -o "$work/echo" ./examples/producers/echo)
(cd "$here" && go build -o "$work/load" ./cmd/load)

mkdir "$work/sockets"
"$work/echo" -R "$work/sockets" -n echo -m 100000 2>/dev/null &
for _ in $(seq 50); do [ -S "$work/sockets/echo" ] && break; sleep 0.1; done
cat >"$work/wsgate.yaml" <<YAML
listen: [{address: 127.0.0.1:0}]
admin: {listen: "off"}
server: {max_connections_per_ip: 0}
log: {level: info}
routes:
  - {path: /inproc, app: echo}
  - {path: /mux, backend: {socket: $work/sockets/echo, mode: mux, connections: 2}}
  - {path: /pc, backend: {socket: $work/sockets/echo, mode: per-client}}
YAML
"$work/wsgate" -config "$work/wsgate.yaml" 2>"$work/log" &
for _ in $(seq 50); do grep -q 'msg=listening' "$work/log" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.*msg=listening address=\([^ ]*\).*/\1/p' "$work/log" | head -1)
sleep 0.5

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for conns in 1 100; do
  for size in 64 1024; do
    declare -A sum=()
    for round in 1 2; do
      for route in inproc mux pc; do
        r=$("$work/load" echo -human -url "ws://$addr/$route" -conns "$conns" -size "$size" -duration "${secs}s" -label "$route")
        rate=$(echo "$r" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
        sum[$route]=$(( ${sum[$route]:-0} + rate ))
        echo "  round $round: $r"
      done
    done
    in=${sum[inproc]}
    printf 'conns=%-4s size=%-5s in-process %7d msg/s | mux %7d msg/s (%.2f) | per-client %7d msg/s (%.2f)\n' \
      "$conns" "$size" $((in/2)) $((sum[mux]/2)) "$(echo "${sum[mux]}/$in" | bc -l)" $((sum[pc]/2)) "$(echo "${sum[pc]}/$in" | bc -l)"
  done
done
