#!/usr/bin/env bash
# The packages, as a Debian administrator meets them: build them, check
# them with lintian, install them, run what they install (the daemon as
# its user, httpd with the module enabled by a2enmod), verify the systemd
# units, install the Python SDK offline and use the Go SDK from another
# module, then purge and check that nothing is left. Run by
# ./scripts/test.sh, as root or through sudo; it changes the machine's
# installed packages and restores them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
version=$(cat VERSION)
tmp=$(mktemp -d)
pids=()
installed=""
# Whatever fails, the machine is left as it was found: the processes this
# script started stopped, and the packages it installed (with the module
# they enabled in the system's /etc/apache2) purged.
cleanup() {
  for p in "${pids[@]}"; do $sudo kill "$p" 2>/dev/null || true; done
  if [ -n "$installed" ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq wsgate libapache2-mod-wsgate wsgate-dev >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "test-packages: FAIL: $*" >&2; exit 1; }

step "build the packages into dist/"
./scripts/packages.sh dist
for p in wsgate libapache2-mod-wsgate wsgate-dev; do
  ls dist/${p}_${version}_*.deb >/dev/null || fail "no $p package"
done
ls dist/wsgate_producer-${version}-py3-none-any.whl >/dev/null || fail "no wheel at $version"

step "lintian: no error, and only the warnings debian/*.lintian-overrides justify"
lintian --fail-on error,warning --display-level '>=warning' --tag-display-limit 0 dist/*.changes

step "versions follow VERSION"
grep -q "^version = \"$version\"" sdk/python/pyproject.toml || fail "sdk/python/pyproject.toml is not at $version"

step "install"
installed=yes
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./dist/wsgate_${version}_*.deb \
  ./dist/libapache2-mod-wsgate_${version}_*.deb ./dist/wsgate-dev_${version}_*.deb >/dev/null
v=$(/usr/bin/wsgate --version)
echo "$v"
[[ $v == "wsgate $version (commit "*", built "*", go"* ]] || fail "wsgate --version: $v"
# A package is built reproducibly: its build date is the changelog's.
built=$(date -u -d "$(dpkg-parsechangelog -S Date)" +%Y-%m-%dT%H:%M:%SZ)
[[ $v == *"built $built"* ]] || fail "wsgate --version does not say the changelog's date $built: $v"
getent passwd wsgate >/dev/null || fail "no wsgate user"
[ -f /etc/wsgate/wsgate.yaml ] || fail "no /etc/wsgate/wsgate.yaml"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' wsgate)
grep -q /etc/wsgate/wsgate.yaml <<<"$conffiles" || fail "wsgate.yaml is not a conffile"
# (Minimal images exclude /usr/share/man from dpkg; the package has them.)
contents=$(dpkg-deb -c dist/wsgate_${version}_*.deb)
grep -q 'usr/share/man/man1/wsgate.1.gz' <<<"$contents" || fail "no wsgate(1)"
grep -q 'usr/share/man/man5/wsgate.yaml.5.gz' <<<"$contents" || fail "no wsgate.yaml(5)"
[ -f /usr/include/wsgate/websocket_plugin.h ] || fail "no plugin header"
php -l /usr/share/php/apachews.php >/dev/null || fail "no PHP SDK"

step "wsgate check /etc/wsgate/wsgate.yaml"
/usr/bin/wsgate check /etc/wsgate/wsgate.yaml

step "systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/wsgate.service /lib/systemd/system/wsgate.socket

step "the daemon as the wsgate user, with the installed configuration"
# Where systemd runs, the package started the service: this test starts
# the same command itself, so that it runs the same way everywhere.
if [ -d /run/systemd/system ]; then
  $sudo systemctl stop wsgate.service
fi
$sudo install -d -o wsgate -g wsgate /run/wsgate
$sudo runuser -u wsgate -- /usr/bin/wsgate -config /etc/wsgate/wsgate.yaml >"$tmp/wsgate.log" 2>&1 &
runner=$!
pids+=($runner)
ready() { /usr/bin/python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8090/readyz", timeout=1)' 2>/dev/null; }
for _ in $(seq 100); do ready && break; sleep 0.1; done
ready || { cat "$tmp/wsgate.log"; fail "the installed daemon is not ready"; }
# The daemon this script started (runuser's child), not any other wsgate
# on the machine.
daemon=$(pgrep -P "$runner" -x wsgate || true)
[ -n "$daemon" ] || daemon=$(pgrep -P "$(pgrep -P "$runner" | head -1)" -x wsgate || true)
[ -n "$daemon" ] || fail "cannot find the daemon started by runuser ($runner)"
user=$(ps -o user= -p "$daemon")
[ "$user" = wsgate ] || fail "the daemon runs as '$user'"
/usr/bin/python3 - <<'PY' || fail "no echo from the installed daemon"
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:8080/echo") as ws:
        await ws.send("hello from the package test")
        assert await ws.recv() == "hello from the package test"
asyncio.run(main())
PY
$sudo kill -TERM "$daemon"
wait || true
pids=()

step "a2enmod in a scratch APACHE_CONFDIR, httpd -t, and a WebSocket through httpd"
# A subshell: httpd's envvars unsets HOME and sets APACHE_* for itself.
(
apachetest=$tmp/apache2
cp -a /etc/apache2 "$apachetest"
export APACHE_CONFDIR=$apachetest
a2dismod -q wsgate >/dev/null 2>&1 || true
a2enmod wsgate
[ -L "$apachetest/mods-enabled/wsgate.load" ] || fail "a2enmod did not enable wsgate"
printf 'Listen 127.0.0.1:18480\n' >"$apachetest/ports.conf"
cat >"$apachetest/sites-enabled/000-default.conf" <<'CONF'
<VirtualHost 127.0.0.1:18480>
  <Location /echo>
    SetHandler websocket-handler
    WebSocketApp echo
  </Location>
</VirtualHost>
CONF
# shellcheck disable=SC1091
. "$apachetest/envvars"
export APACHE_RUN_DIR=$tmp/run APACHE_LOCK_DIR=$tmp/lock APACHE_LOG_DIR=$tmp/log APACHE_PID_FILE=$tmp/run/apache2.pid
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
chmod 755 "$tmp"
/usr/sbin/apache2 -d "$apachetest" -t
/usr/sbin/apache2 -d "$apachetest" -k start
for _ in $(seq 100); do
  [ -s "$APACHE_PID_FILE" ] && /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18480), 1)' 2>/dev/null && break
  sleep 0.1
done
/usr/bin/python3 - <<'PY' || { cat "$APACHE_LOG_DIR/error.log"; fail "no echo through httpd"; }
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:18480/echo") as ws:
        await ws.send("hello through httpd")
        assert await ws.recv() == "hello through httpd"
asyncio.run(main())
PY
/usr/sbin/apache2 -d "$apachetest" -k stop
for _ in $(seq 100); do [ -e "$APACHE_PID_FILE" ] || break; sleep 0.1; done
)
# The system's own configuration, as the package left it.
apache2ctl configtest

step "the Python SDK installs offline"
/usr/bin/python3 -m venv "$tmp/venv"
env -u PIP_FIND_LINKS PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$tmp/venv/bin/pip" install -q ./sdk/python
[ "$("$tmp/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("wsgate-producer"))')" = "$version" ] || fail "SDK version"
/usr/bin/python3 -m venv "$tmp/venv2"
env -u PIP_FIND_LINKS PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$tmp/venv2/bin/pip" install -q dist/wsgate_producer-${version}-py3-none-any.whl
"$tmp/venv2/bin/python" -c 'import wsgate_producer.aio, wsgate_producer.blocking, wsgate_producer.pywebsocket, mod_pywebsocket.msgutil, pywebsocket3.msgutil'

step "the Go SDK from another module, as the README shows"
mkdir -p "$tmp/myproducer"
(
  cd "$tmp/myproducer"
  go mod init example.com/myproducer >/dev/null 2>&1
  go mod edit -replace github.com/wsgate/wsgate="$root"
  go mod edit -require github.com/wsgate/wsgate@v0.0.0
  cat >main.go <<'GO'
package main

import (
	"log"

	"github.com/wsgate/wsgate/sdk/producer"
)

type echo struct{}

func (echo) OnOpen(*producer.Client, *producer.Accept) error { return nil }
func (echo) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	c.Send(typ, data)
}
func (echo) OnClose(*producer.Client, uint16, string) {}

func main() {
	ln, err := producer.Listen("/run/wsgate/echo.sock")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal((&producer.Server{Handler: echo{}}).Serve(ln))
}
GO
  go mod tidy
  go build -o /dev/null .
)

step "purge"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq wsgate libapache2-mod-wsgate wsgate-dev >/dev/null
installed=""
for f in /usr/bin/wsgate /etc/wsgate /usr/lib/apache2/modules/mod_wsgate.so /usr/lib/apache2/modules/libwsgate.so \
  /etc/apache2/mods-available/wsgate.load /etc/apache2/mods-enabled/wsgate.load /lib/systemd/system/wsgate.service \
  /lib/systemd/system/wsgate.socket /usr/lib/wsgate /usr/include/wsgate /usr/share/man/man1/wsgate.1.gz \
  /usr/share/doc/wsgate /usr/share/php/apachews.php; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
for p in wsgate libapache2-mod-wsgate wsgate-dev; do
  ! dpkg -s "$p" >/dev/null 2>&1 || fail "$p is still known to dpkg"
done
# Debian policy keeps the system user (its files may outlive the package).
getent passwd wsgate >/dev/null && echo "the wsgate user stays, as Debian policy has it"
echo "test-packages: ok"
