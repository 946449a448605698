#!/usr/bin/env bash
# Echo throughput of the three Apache deployments, in one run, interleaved
# A B C A B C with the same load generator:
#   daemon       wsgate alone
#   mod_wsgate   the engine inside httpd (event MPM), WebSocketApp echo
#   proxied      httpd's mod_proxy_http (upgrade=websocket) in front of the daemon
# then the resident memory of httpd's children holding idle WebSockets.
# Everything listens on 127.0.0.1. Needs apache2 and apache2-dev.
# Usage: [THREADS=ThreadsPerChild] bench/apache.sh [seconds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-3}
threads=${THREADS:-64}
work=$(mktemp -d)
chmod 755 "$work"
stop_httpd() {
  for c in conf plain.conf; do
    [ -f "$work/$c" ] && /usr/sbin/apache2 -f "$work/$c" -k stop >/dev/null 2>&1 || true
  done
}
trap 'stop_httpd; kill $(jobs -p) 2>/dev/null; sleep 1; rm -rf "$work"' EXIT

make -s -C "$root/frontdoor/apache" OUT="$work/build" >"$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
(cd "$root" && go build -o "$work/wsgate" ./cmd/wsgate)
(cd "$here" && go build -o "$work/load" ./cmd/load)

cat >"$work/wsgate.yaml" <<YAML
listen: [{address: 127.0.0.1:0}]
admin: {listen: "off"}
server: {max_connections_per_ip: 0}
routes: [{path: /echo, app: echo, origin_check: off}]
YAML
"$work/wsgate" -config "$work/wsgate.yaml" 2>"$work/log" &
for _ in $(seq 50); do grep -q 'msg=listening' "$work/log" 2>/dev/null && break; sleep 0.1; done
daemon=$(sed -n 's/.*msg=listening address=\([^ ]*\).*/\1/p' "$work/log" | head -1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mods=/usr/lib/apache2/modules
user=""
[ "$(id -u)" = 0 ] && user=$'User www-data\nGroup www-data'
cat >"$work/conf" <<CONF
ServerRoot $work
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile $work/httpd.pid
ErrorLog $work/error.log
Mutex file:$work default
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
# Enough children from the start for the idle measurement below, so that
# it counts what a WebSocket adds, not the start of new children.
StartServers $(( (600 + threads - 1) / threads ))
MinSpareThreads $threads
MaxSpareThreads $((threads * 16))
ServerLimit 16
ThreadLimit $threads
ThreadsPerChild $threads
MaxRequestWorkers $((threads * 16))
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule proxy_module $mods/mod_proxy.so
LoadModule proxy_http_module $mods/mod_proxy_http.so
LoadModule wsgate_module $work/build/mod_wsgate.so
WsgateLibrary $work/build/libwsgate.so
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketOriginCheck Off
</Location>
ProxyPass /proxied/echo http://$daemon/echo upgrade=websocket
CONF
/usr/sbin/apache2 -f "$work/conf" -k start
# The same server without mod_wsgate, for what the engine adds to a child.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
grep -v -i 'wsgate\|^<Location\|^</Location\|WebSocket' "$work/conf" |
  sed -e "s/^Listen .*/Listen 127.0.0.1:$port2/" -e "s#^PidFile .*#PidFile $work/plain.pid#" -e "s#^ErrorLog .*#ErrorLog $work/plain.log#" >"$work/plain.conf"
/usr/sbin/apache2 -f "$work/plain.conf" -k start
sleep 1.5
get() { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null; exec 3>&-; }
get "$port"; get "$port2"
# Per child: resident, and private (not shared with the other children:
# libwsgate.so's file pages are shared through the page cache).
child_mem() {
  local rss=0 priv=0 n=0 k
  for k in $(pgrep -P "$(cat "$1")"); do
    rss=$((rss + $(awk '/^Rss:/{print $2}' /proc/$k/smaps_rollup)))
    priv=$((priv + $(awk '/^Private_(Clean|Dirty):/{s+=$2} END{print s}' /proc/$k/smaps_rollup)))
    n=$((n + 1))
  done
  echo "$n children, per child: RSS $((rss / n)) KiB, private $((priv / n)) KiB"
}
echo "idle httpd with mod_wsgate:    $(child_mem "$work/httpd.pid")"
echo "idle httpd without mod_wsgate: $(child_mem "$work/plain.pid")"
/usr/sbin/apache2 -f "$work/plain.conf" -k stop

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(/usr/sbin/apache2 -v | head -1)"
for conns in 1 50; do
  for size in 64 4096; do
    declare -A sum=()
    for round in 1 2; do
      for target in "daemon ws://$daemon/echo" "mod_wsgate ws://127.0.0.1:$port/echo" "proxied ws://127.0.0.1:$port/proxied/echo"; do
        set -- $target
        r=$("$work/load" echo -human -url "$2" -conns "$conns" -size "$size" -duration "${secs}s" -label "$1")
        rate=$(echo "$r" | sed -n 's/.* rate=\([0-9]*\).*/\1/p')
        sum[$1]=$(( ${sum[$1]:-0} + rate ))
        echo "  round $round: $r"
      done
    done
    d=${sum[daemon]}
    printf 'conns=%-3s size=%-5s daemon %7d msg/s | mod_wsgate %7d msg/s (%.2f) | httpd proxy + daemon %7d msg/s (%.2f)\n' \
      "$conns" "$size" $((d/2)) $((sum[mod_wsgate]/2)) "$(echo "${sum[mod_wsgate]}/$d" | bc -l)" \
      $((sum[proxied]/2)) "$(echo "${sum[proxied]}/$d" | bc -l)"
  done
done

# Memory: what httpd (parent and children) grows by per idle WebSocket.
# Each one holds a worker thread, so n stays within MaxRequestWorkers.
kids() { pgrep -P "$(cat "$work/httpd.pid")" | wc -l; }
echo "ThreadsPerChild $threads, $(kids) children:"
"$work/load" idle -human -url "ws://127.0.0.1:$port/echo" -pidfile "$work/httpd.pid" -children -n 500 -settle 3s
echo "after: $(kids) children; each child's RSS (KiB): $(for p in $(pgrep -P "$(cat "$work/httpd.pid")"); do awk '/VmRSS/{printf "%s ", $2}' /proc/$p/status; done)"
