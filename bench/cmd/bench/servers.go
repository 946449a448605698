package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/load"
	"github.com/wsgate/wsgate/bench/nginx"
)

// server is one implementation under test, started fresh for each
// measurement so that none inherits another run's heap or sockets.
type server struct {
	name  string
	peer  bool // a peer library (wsgate's ratio is printed against it)
	start func(h *harness, port int) (*proc, error)
	// skip lists the scenarios the server cannot take part in.
	skip map[string]bool
	// note says how the server is configured, where a case's label
	// should say it (the hold scenario: httpd's Timeout).
	note string
	// loadArgs are added to the load generator's command line for this
	// server (the auth group's token).
	loadArgs func(h *harness) ([]string, error)
}

// proc is a running server.
type proc struct {
	pid      int  // measured for RSS
	children bool // measure pid's children too (httpd)
	stop     func()
	// A server of several processes (a cluster) lists them in parts:
	// their CPU time is added up and each one's RSS reported. urls are
	// the ports, besides the first, that serve the case's path.
	parts []part
	ports []int
	// status is httpd's server-status?auto URL, for the idle scenario's
	// count of busy workers.
	status string
}

type part struct {
	name string
	pid  int
}

func wsgateConfig(port int) string {
	return fmt.Sprintf(`listen: [{address: "127.0.0.1:%d"}]
log: {level: warn}
admin: {listen: "off"}
# The peers have no per-address limit and send no pings: neither does
# wsgate here, so that the figures compare the same work. No server gets
# a forced collection either: wsgate's return of memory after a burst
# (return_memory) is off here, and on in the rows named "as shipped".
server: {max_connections_per_ip: 0, max_connections: 0, return_memory: false}
defaults:
  origin_check: "off"
  keepalive_interval: 0
  message_timeout: 0
routes:
  - {path: /echo, app: echo}
  - {path: /echo-deflate, app: echo, deflate: true}
  - {path: /broadcast, app: chat}
`, port)
}

// idleApacheServers hold idle connections: the daemon, and mod_wsgate in
// httpd sized as issue 16 says (idleMPM), over TLS when secure.
func (h *harness) idleApacheServers(secure bool) []server {
	daemon := h.tlsServer()
	if !secure {
		daemon = daemonServer("wsgate")
	}
	return []server{daemon, {name: "mod_wsgate", start: func(h *harness, port int) (*proc, error) {
		return h.httpdWith(port, httpdOpts{mpm: idleMPM, tls: secure}, echoLocation)
	}}}
}

// chatLocation is the chat application on /broadcast, the daemon's path
// for it in wsgateConfig.
const chatLocation = `<Location /broadcast>
  SetHandler websocket-handler
  WebSocketApp chat
  WebSocketOriginCheck Off
</Location>
`

// parkedApacheServers are idleApacheServers with the chat application,
// for broadcasts to idle (parked) WebSockets. httpd's two children reach
// each other's clients through a NATS server (WsgateCluster), as the
// README tells a server with several children to.
func (h *harness) parkedApacheServers() []server {
	return []server{daemonServer("wsgate"), {name: "mod_wsgate", start: func(h *harness, port int) (*proc, error) {
		broker, natsPort, err := h.natsBroker()
		if err != nil {
			return nil, err
		}
		p, err := h.httpdWith(port, httpdOpts{mpm: idleMPM, global: fmt.Sprintf("WsgateCluster nats://127.0.0.1:%d\n", natsPort)}, echoLocation+chatLocation)
		if err != nil {
			broker.stop()
			return nil, err
		}
		stop := p.stop
		p.stop = func() { stop(); broker.stop() }
		// The children hear each other's heartbeat (one a second) before
		// anything is broadcast.
		time.Sleep(3 * time.Second)
		return p, nil
	}}}
}

// timeoutApache is idleApacheServers' httpd with httpd's Timeout set
// (0: the default, 60 s), serving the echo over TLS on the case's port and
// in the clear on a second one, both with WsgateReleaseWorkers at its
// default (On): the setting under which issue 23 found idle clients cut
// at Timeout.
func (h *harness) timeoutApache(timeout int) server {
	global, note := "", "Timeout at its default (60 s)"
	if timeout > 0 {
		global, note = fmt.Sprintf("Timeout %d\n", timeout), fmt.Sprintf("Timeout %d", timeout)
	}
	return server{name: "mod_wsgate", note: note, start: func(h *harness, port int) (*proc, error) {
		return h.httpdWith(port, httpdOpts{mpm: idleMPM, tls: true, plain: true, global: global}, echoLocation)
	}}
}

// keepAliveApache is idleApacheServers' httpd for plain keep-alive
// clients: the same sizing, and a keep-alive timeout longer than the
// measurement.
func (h *harness) keepAliveApache() server {
	return server{name: "mod_wsgate", start: func(h *harness, port int) (*proc, error) {
		return h.httpdWith(port, httpdOpts{mpm: idleMPM, global: "KeepAliveTimeout 300\nMaxKeepAliveRequests 0\n"}, echoLocation)
	}}
}

// tlsServer is wsgate listening with TLS (a throwaway ECDSA certificate)
// and its default record layer (crypto/tls's): the peers' servers here
// speak plain WebSocket only.
func (h *harness) tlsServer() server { return h.tlsServerWith("wsgate", "go") }

// tlsServerWith is tlsServer named name, with record_layer layer.
func (h *harness) tlsServerWith(name, layer string) server {
	return server{name: name, start: func(h *harness, port int) (*proc, error) {
		cert, key := filepath.Join(h.work, "cert.pem"), filepath.Join(h.work, "key.pem")
		if err := load.WriteCert(cert, key); err != nil {
			return nil, err
		}
		return h.startDaemon(port, "wsgate-tls.yaml", strings.Replace(wsgateConfig(port), fmt.Sprintf(`{address: "127.0.0.1:%d"}`, port),
			fmt.Sprintf(`{address: "127.0.0.1:%d", tls: {cert: %q, key: %q, record_layer: %s}}`, port, cert, key, layer), 1))
	}}
}

// recordLayerServers are wsgate over TLS with each record layer.
func (h *harness) recordLayerServers() []server {
	return []server{h.tlsServerWith("record_layer go", "go"), h.tlsServerWith("record_layer wsgate", "wsgate")}
}

// startDaemon writes conf as the daemon's configuration (file name, in
// the work directory) and starts wsgate on port.
func (h *harness) startDaemon(port int, name, conf string) (*proc, error) {
	cfg := filepath.Join(h.work, name)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return h.spawn(port, filepath.Join(h.work, "wsgate"), "-config", cfg)
}

// shippedServer is daemonServer with server.return_memory at its
// default (on): the collection and FreeOSMemory after a burst that the
// peers do not get.
func shippedServer(name string) server {
	return server{name: name, start: func(h *harness, port int) (*proc, error) {
		return h.startDaemon(port, "wsgate-shipped.yaml", strings.Replace(wsgateConfig(port), "return_memory: false", "return_memory: true", 1))
	}}
}

// defaultsServer is wsgate as a user runs it: the default route settings
// (a ping after 25 s of quiet, a message timeout of a minute, the origin
// check), the access log written to a file, the metrics on the admin
// listener, memory returned after bursts; only the per-address limit is
// off, because every client comes from a few loopback addresses.
func defaultsServer(name string) server {
	return server{name: name, start: func(h *harness, port int) (*proc, error) {
		admin, err := freePort()
		if err != nil {
			return nil, err
		}
		return h.startDaemon(port, "wsgate-defaults.yaml", fmt.Sprintf(`listen: [{address: "127.0.0.1:%d"}]
log: {level: info, output: %q}
admin: {listen: "127.0.0.1:%d"}
server: {max_connections_per_ip: 0}
routes:
  - {path: /echo, app: echo}
`, port, filepath.Join(h.work, "defaults-access.log"), admin))
	}}
}

// defaultsTLSServer is defaultsServer listening with TLS and record_layer
// layer.
func defaultsTLSServer(name, layer string) server {
	return server{name: name, start: func(h *harness, port int) (*proc, error) {
		cert, key := filepath.Join(h.work, "cert.pem"), filepath.Join(h.work, "key.pem")
		if err := load.WriteCert(cert, key); err != nil {
			return nil, err
		}
		return h.startDaemon(port, "wsgate-defaults-tls.yaml", fmt.Sprintf(`listen: [{address: "127.0.0.1:%d", tls: {cert: %q, key: %q, record_layer: %s}}]
log: {level: info, output: %q}
admin: {listen: "off"}
server: {max_connections_per_ip: 0}
routes:
  - {path: /echo, app: echo}
`, port, cert, key, layer, filepath.Join(h.work, "defaults-access.log")))
	}}
}

// daemonServer is wsgate on the harness's configuration (wsgateConfig).
func daemonServer(name string) server {
	return server{name: name, start: func(h *harness, port int) (*proc, error) {
		return h.startDaemon(port, "wsgate.yaml", wsgateConfig(port))
	}}
}

// The "ops" group measures what operating wsgate costs, one build in
// three configurations: ops-off has every limit, the metrics and the
// access log off; ops-on has every limit on and exercised on each
// handshake, and the metrics on the admin listener, scraped every second
// by the harness as Prometheus would; ops-log is ops-on with the access
// log written to a file (a line per connection).
var opsVariants = []string{"ops-off", "ops-on", "ops-log"}

func opsConfig(variant string, port, adminPort int, logFile string) string {
	if variant == "ops-off" {
		return fmt.Sprintf(`listen: [{address: "127.0.0.1:%d"}]
log: {level: warn, access: false}
admin: {listen: "off"}
server: {max_connections: 0, max_connections_per_ip: 0, max_pending_handshakes: 0, max_header_count: 10000}
defaults: {origin_check: "off", keepalive_interval: 0, message_timeout: 0, max_message_size: 32MiB}
routes: [{path: /echo, app: echo}]
`, port)
	}
	return fmt.Sprintf(`listen: [{address: "127.0.0.1:%d"}]
log: {level: info, access: %t, output: %q}
admin: {listen: "127.0.0.1:%d"}
# Limits high enough not to refuse the load, low enough to be checked on
# every handshake and connection.
server: {max_connections: auto, max_connections_per_ip: 100000, handshake_rate_per_ip: 1000000, memory_limit: 4GiB}
defaults: {origin_check: "off", keepalive_interval: 0, message_timeout: 60s, max_connections: 1000000}
routes: [{path: /echo, app: echo}]
`, port, variant == "ops-log", logFile, adminPort)
}

func (h *harness) opsServers() []server {
	var out []server
	for _, name := range opsVariants {
		out = append(out, server{name: name, start: func(h *harness, port int) (*proc, error) {
			admin, err := freePort()
			if err != nil {
				return nil, err
			}
			logFile := filepath.Join(h.work, name+".log")
			os.Remove(logFile)
			p, err := h.startDaemon(port, name+".yaml", opsConfig(name, port, admin, logFile))
			if err != nil || name == "ops-off" {
				return p, err
			}
			// Scrape the metrics every second, as Prometheus would.
			done := make(chan struct{})
			go func() {
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for {
					select {
					case <-done:
						return
					case <-t.C:
						if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin)); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				}
			}()
			stop := p.stop
			p.stop = func() { close(done); stop() }
			return p, nil
		}})
	}
	return out
}

// peer starts the peer library's server called name (bench/cmd/peers) on
// port.
func (h *harness) peer(name string, port int) (*proc, error) {
	return h.spawn(port, filepath.Join(h.work, "peers"), "-server", name, "-addr", "127.0.0.1:"+strconv.Itoa(port))
}

func (h *harness) servers() []server {
	list := []server{daemonServer("wsgate")}
	for _, p := range []string{"gorilla", "coder", "gws", "nbio"} {
		list = append(list, server{name: p, peer: true, start: func(h *harness, port int) (*proc, error) {
			return h.peer(p, port)
		}})
	}
	// The physical limit: a C echo over epoll that never blocks
	// (bench/tcpecho), echo rows only.
	list = append(list, server{name: "tcp", start: func(h *harness, port int) (*proc, error) {
		return h.spawn(port, filepath.Join(h.work, "tcpecho"), "127.0.0.1:"+strconv.Itoa(port))
	}, skip: map[string]bool{"idle": true, "storm": true, "broadcast": true, "deflate": true, "spike": true}})
	return list
}

// The "cluster" group measures a broadcast spread over three daemons
// joined by a NATS server, against one daemon holding every subscriber,
// in the same run and on the same server cores: the cluster does the same
// deliveries with three processes and a broker sharing them, so what it
// costs is the bus (a publish, NATS's relay, a receive per node and
// message) and three runtimes instead of one.
func (h *harness) clusterServers() []server {
	single := server{name: "1 node", start: func(h *harness, port int) (*proc, error) {
		p, err := h.startDaemon(port, "wsgate.yaml", wsgateConfig(port))
		if p != nil {
			p.parts = []part{{"wsgate", p.pid}}
		}
		return p, err
	}}
	three := server{name: "3 nodes + NATS", start: func(h *harness, port int) (*proc, error) {
		return h.cluster(port, 3)
	}}
	return []server{single, three}
}

// The "direct" group measures an echo producer three ways, in one run:
// the application in the daemon's process (in-process), a producer
// behind the framed protocol (mux: every message crosses the UNIX socket
// twice), and the same producer taking each client's socket itself
// (direct: the gateway only does the handshake). The producer is
// examples/producers/echo, with -direct for the last.
func (h *harness) directServers() []server {
	inProcess := daemonServer("in-process")
	viaProducer := func(name, mode string, args ...string) server {
		return server{name: name, start: func(h *harness, port int) (*proc, error) {
			dir, err := os.MkdirTemp(h.work, name)
			if err != nil {
				return nil, err
			}
			os.Chmod(dir, 0o755)
			sock := filepath.Join(dir, "echo")
			prod, err := h.spawnSocket(sock, append([]string{filepath.Join(h.work, "echo-producer"), "-R", dir, "-n", "echo", "-m", "0"}, args...)...)
			if err != nil {
				return nil, err
			}
			return h.daemonWith(port, fmt.Sprintf("  - {path: /echo, backend: {socket: %s, mode: %s}}", sock, mode),
				part{"producer", prod.pid}, prod)
		}}
	}
	return []server{inProcess, viaProducer("mux", "mux"), viaProducer("direct", "direct", "-direct")}
}

// eventsServers serve /echo in the daemon's process, through a producer
// (mux), and through a WebSocket-over-HTTP application (Go's net/http).
func (h *harness) eventsServers() []server {
	ds := h.directServers()
	viaHTTP := server{name: "http", start: func(h *harness, port int) (*proc, error) {
		aport, err := freePort()
		if err != nil {
			return nil, err
		}
		app, err := h.spawn(aport, filepath.Join(h.work, "events-echo"), "-listen", fmt.Sprintf("127.0.0.1:%d", aport))
		if err != nil {
			return nil, err
		}
		return h.daemonWith(port, fmt.Sprintf(`  - {path: /echo, backend: {http: "http://127.0.0.1:%d/"}}`, aport), part{"http app", app.pid}, app)
	}}
	return []server{ds[0], ds[1], viaHTTP}
}

// daemonWith starts the daemon with route in place of the echo route,
// in front of app (which it stops with itself).
func (h *harness) daemonWith(port int, route string, p part, app *proc) (*proc, error) {
	d, err := h.startDaemon(port, "wsgate-with.yaml", strings.Replace(wsgateConfig(port), "  - {path: /echo, app: echo}", route, 1))
	if err != nil {
		app.stop()
		return nil, err
	}
	return &proc{pid: d.pid, parts: []part{{"wsgate", d.pid}, p}, stop: func() { d.stop(); app.stop() }}, nil
}

// phpServers serve /echo with examples/wsoverhttp/php/echo.php behind the
// daemon (PHP's built-in server) and inside httpd (subrequests to php-cgi
// through mod_proxy_fcgi); nil without php and php-cgi.
func (h *harness) phpServers() []server {
	php, err1 := exec.LookPath("php")
	phpCGI, err2 := exec.LookPath("php-cgi")
	if err1 != nil || err2 != nil {
		return nil
	}
	dir := filepath.Join(h.root, "examples", "wsoverhttp", "php")
	daemon := server{name: "daemon", start: func(h *harness, port int) (*proc, error) {
		aport, err := freePort()
		if err != nil {
			return nil, err
		}
		app, err := h.spawn(aport, "env", "PHP_CLI_SERVER_WORKERS=8", php, "-S", fmt.Sprintf("127.0.0.1:%d", aport), "-t", dir)
		if err != nil {
			return nil, err
		}
		return h.daemonWith(port, fmt.Sprintf(`  - {path: /echo, backend: {http: "http://127.0.0.1:%d/echo.php"}}`, aport), part{"php", app.pid}, app)
	}}
	inHTTPD := server{name: "mod_wsgate", start: func(h *harness, port int) (*proc, error) {
		fport, err := freePort()
		if err != nil {
			return nil, err
		}
		app, err := h.spawn(fport, "env", "PHP_FCGI_CHILDREN=8", "PHP_FCGI_MAX_REQUESTS=0", phpCGI, "-b", fmt.Sprintf("127.0.0.1:%d", fport))
		if err != nil {
			return nil, err
		}
		p, err := h.httpdWith(port, httpdOpts{}, fmt.Sprintf(`LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
Alias /app/ %[1]s/
<Directory %[1]s>
  Require all granted
  <FilesMatch "\.php$">
    SetHandler "proxy:fcgi://127.0.0.1:%[2]d"
  </FilesMatch>
</Directory>
ProxyFCGIBackendType GENERIC
<Location /echo>
  SetHandler websocket-handler
  WebSocketOriginCheck Off
  WebSocketEventHandler /app/echo.php
</Location>
`, dir, fport))
		if err != nil {
			app.stop()
			return nil, err
		}
		stop := p.stop
		p.stop = func() { stop(); app.stop() }
		return p, nil
	}}
	return []server{daemon, inHTTPD}
}

// spawnSocket starts a program on the server's cores and waits until it
// listens on the UNIX socket sock.
func (h *harness) spawnSocket(sock string, argv ...string) (*proc, error) {
	p, exited, err := h.startPinned("producer.log", argv)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
		select {
		case <-exited:
			p.stop()
			return nil, fmt.Errorf("%s exited before listening", argv[0])
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s: no socket %s after 15s", argv[0], sock)
		}
	}
}

// natsServer is Debian's nats-server (package nats-server), which puts
// it in /usr/sbin, or one on the PATH.
func natsServer() (string, error) {
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server", nil
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	return "", errors.New("nats-server is not installed (Debian package nats-server)")
}

// natsBroker starts a NATS server on a free loopback port.
func (h *harness) natsBroker() (*proc, int, error) {
	bin, err := natsServer()
	if err != nil {
		return nil, 0, err
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	p, err := h.spawn(port, bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	return p, port, err
}

// cluster starts a NATS server and n wsgate daemons joined through it,
// the first on port, and waits until every node sees the others.
func (h *harness) cluster(port, n int) (*proc, error) {
	var procs []*proc
	stopAll := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}
	broker, natsPort, err := h.natsBroker()
	if err != nil {
		return nil, err
	}
	procs = append(procs, broker)
	p := &proc{}
	admins := make([]int, n)
	for i := range n {
		nport := port
		if i > 0 {
			if nport, err = freePort(); err != nil {
				stopAll()
				return nil, err
			}
			p.ports = append(p.ports, nport)
		}
		if admins[i], err = freePort(); err != nil {
			stopAll()
			return nil, err
		}
		name := fmt.Sprintf("node-%d", i+1)
		conf := strings.Replace(wsgateConfig(nport), `admin: {listen: "off"}`, fmt.Sprintf(`admin: {listen: "127.0.0.1:%d"}`, admins[i]), 1)
		conf += fmt.Sprintf("cluster: {nats: [\"nats://127.0.0.1:%d\"], name: %s}\n", natsPort, name)
		d, err := h.startDaemon(nport, name+".yaml", conf)
		if err != nil {
			stopAll()
			return nil, err
		}
		procs = append(procs, d)
		p.parts = append(p.parts, part{name, d.pid})
	}
	p.parts = append(p.parts, part{"nats", broker.pid})
	p.pid = procs[1].pid
	p.stop = stopAll
	// A node publishes a heartbeat every second; once each has heard the
	// others, every node's subscription is in place.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < n; {
		if time.Now().After(deadline) {
			stopAll()
			return nil, fmt.Errorf("node-%d does not see the other %d nodes after 15s", i+1, n-1)
		}
		if peers, _ := metric(admins[i], "wsgate_cluster_peers"); peers == float64(n-1) {
			i++
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p, nil
}

// metric reads one unlabelled sample from a daemon's admin listener.
func metric(adminPort int, name string) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s", name)
}

// apacheServers are the Apache deployments: mod_wsgate, and httpd's
// mod_proxy_http tunnel in front of the daemon.
func (h *harness) apacheServers() []server {
	return []server{
		{name: "mod_wsgate", start: func(h *harness, port int) (*proc, error) { return h.httpd(port, 0) }},
		// The same with each WebSocket keeping its worker, as before
		// workers were released: what releasing costs a busy connection.
		{name: "mod_wsgate, workers kept", start: func(h *harness, port int) (*proc, error) {
			return h.httpdWith(port, httpdOpts{global: "WsgateReleaseWorkers Off\n"}, echoLocation)
		}},
		{name: "httpd proxy", start: func(h *harness, port int) (*proc, error) {
			dport, err := freePort()
			if err != nil {
				return nil, err
			}
			d, err := h.startDaemon(dport, "wsgate-proxied.yaml", wsgateConfig(dport))
			if err != nil {
				return nil, err
			}
			p, err := h.httpd(port, dport)
			if err != nil {
				d.stop()
				return nil, err
			}
			stop := p.stop
			p.stop = func() { stop(); d.stop() }
			return p, nil
		}},
	}
}

// spawn starts a server pinned to the server's cores and waits until its
// port accepts connections.
func (h *harness) spawn(port int, argv ...string) (*proc, error) {
	p, exited, err := h.startPinned("server.log", argv)
	if err != nil {
		return nil, err
	}
	if err := waitPort(port, exited); err != nil {
		p.stop()
		b, _ := os.ReadFile(filepath.Join(h.work, "server.log"))
		return nil, fmt.Errorf("%s: %v\n%s", argv, err, b)
	}
	return p, nil
}

// startPinned starts argv on the server's cores in a process group of
// its own, its output in logName; stop kills the group. exited closes
// when the process ends.
func (h *harness) startPinned(logName string, argv []string) (*proc, <-chan struct{}, error) {
	argv = pinned(h.serverCPUs, argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	log, _ := os.Create(filepath.Join(h.work, logName))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	return &proc{pid: cmd.Process.Pid, stop: func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		log.Close()
	}}, exited, nil
}

// pinned prefixes argv with taskset for cpus, when there are any.
func pinned(cpus string, argv []string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

func waitPort(port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before listening")
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 15s")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// httpd starts Apache (event MPM) on port with mod_wsgate's echo route at
// /echo, or, when daemonPort is not zero, with /echo proxied to the daemon
// there (mod_proxy_http, upgrade=websocket).
const echoLocation = `<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketOriginCheck Off
</Location>
`

func (h *harness) httpd(port, daemonPort int) (*proc, error) {
	route := echoLocation
	if daemonPort != 0 {
		route = fmt.Sprintf("ProxyPass /echo http://127.0.0.1:%d/echo upgrade=websocket\n", daemonPort)
	}
	return h.httpdWith(port, httpdOpts{}, route)
}

// httpdOpts vary the harness's httpd.
type httpdOpts struct {
	// mpm replaces the event MPM's sizing (default: 64 threads a child,
	// up to 2,048 workers, so that busy connections never wait for one).
	mpm string
	// tls: port is an https listener (the harness's certificate), and
	// server-status is served on a plain port of its own.
	tls bool
	// plain: with tls, the route is served on the plain port too (the
	// proc's ports), for ws and wss clients of one httpd.
	plain  bool
	global string
}

// idleMPM is the sizing issue 16 holds idle connections with: two
// children of 25 threads. AsyncRequestWorkerFactor lets each child keep
// that many connections per idle worker waiting (the default, 2, stops
// accepting at about 75 a child).
const idleMPM = `StartServers 2
ServerLimit 2
ThreadsPerChild 25
MaxRequestWorkers 50
AsyncRequestWorkerFactor 250
`

// mpmDefault is httpdOpts.mpm's default.
const mpmDefault = `StartServers 2
ServerLimit 32
ThreadLimit 64
ThreadsPerChild 64
MinSpareThreads 64
MaxSpareThreads 2048
MaxRequestWorkers 2048
`

// httpdWith starts httpd (event MPM, mod_wsgate loaded) with route as the
// rest of its configuration.
func (h *harness) httpdWith(port int, o httpdOpts, route string) (*proc, error) {
	mods := "/usr/lib/apache2/modules"
	user := ""
	if os.Getuid() == 0 {
		user = "User www-data\nGroup www-data\n"
	}
	dir := filepath.Join(h.work, "httpd-"+strconv.Itoa(port))
	os.MkdirAll(dir, 0o755)
	if o.mpm == "" {
		o.mpm = mpmDefault
	}
	statusPort := port
	listen := fmt.Sprintf("Listen 127.0.0.1:%d\n", port)
	if o.tls {
		var err error
		if statusPort, err = freePort(); err != nil {
			return nil, err
		}
		cert, key := filepath.Join(h.work, "cert.pem"), filepath.Join(h.work, "key.pem")
		if err := load.WriteCert(cert, key); err != nil {
			return nil, err
		}
		mods := "/usr/lib/apache2/modules"
		listen = fmt.Sprintf(`Listen 127.0.0.1:%[1]d
Listen 127.0.0.1:%[2]d https
LoadModule socache_shmcb_module %[3]s/mod_socache_shmcb.so
LoadModule ssl_module %[3]s/mod_ssl.so
SSLSessionCache shmcb:%[4]s/ssl_scache(512000)
<VirtualHost 127.0.0.1:%[2]d>
SSLEngine on
SSLCertificateFile %[5]s
SSLCertificateKeyFile %[6]s
%[7]s
</VirtualHost>
`, statusPort, port, mods, dir, cert, key, route)
		if !o.plain {
			route = ""
		}
	}
	conf := fmt.Sprintf(`ServerRoot %[1]s
ServerName 127.0.0.1
%[2]sPidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
Mutex file:%[1]s default
%[3]sLoadModule mpm_event_module %[4]s/mod_mpm_event.so
%[7]sLoadModule authz_core_module %[4]s/mod_authz_core.so
LoadModule proxy_module %[4]s/mod_proxy.so
LoadModule proxy_http_module %[4]s/mod_proxy_http.so
LoadModule wsgate_module %[5]s/mod_wsgate.so
WsgateLibrary %[5]s/libwsgate.so
LoadModule status_module %[4]s/mod_status.so
<Location /server-status>
  SetHandler server-status
</Location>
%[8]s
%[6]s`, dir, listen, user, mods, filepath.Join(h.work, "build"), route, o.mpm, o.global)
	cf := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	argv := pinned(h.serverCPUs, []string{"/usr/sbin/apache2", "-f", cf, "-k", "start"})
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("httpd: %v: %s", err, out)
	}
	stop := func() {
		exec.Command("/usr/sbin/apache2", "-f", cf, "-k", "stop").Run()
		// -k stop returns at once; wait for the parent to go.
		for range 100 {
			if _, err := os.Stat(filepath.Join(dir, "httpd.pid")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := waitPort(port, nil); err != nil {
		stop()
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("httpd: %v\n%s", err, b)
	}
	// The parent may write its pid file after the children listen.
	pid := 0
	for range 100 {
		b, _ := os.ReadFile(filepath.Join(dir, "httpd.pid"))
		if pid, _ = strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := &proc{pid: pid, children: true, stop: stop, status: fmt.Sprintf("http://127.0.0.1:%d/server-status?auto", statusPort)}
	if o.tls && o.plain {
		p.ports = []int{statusPort}
	}
	return p, nil
}

// authVariants are the auth group's servers: the same route with no
// auth, and with a JWT checked with each kind of key.
var authVariants = []struct{ name, alg, key string }{
	{"no auth", "", ""},
	{"JWT HS256", "HS256", "hs.secret"},
	{"JWT RS256", "RS256", "rsa"},
	{"JWT ES256", "ES256", "ec"},
	{"JWT EdDSA", "EdDSA", "ed25519"},
}

// authKeys makes the auth group's keys with openssl, once: an HMAC
// secret, and RSA 2048, EC P-256 and Ed25519 key pairs.
func (h *harness) authKeys() error {
	h.authOnce.Do(func() {
		dir := filepath.Join(h.work, "auth")
		os.MkdirAll(dir, 0o755)
		run := func(argv ...string) {
			if h.authErr != nil {
				return
			}
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				h.authErr = fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "hs.secret"), []byte(strings.Repeat("s3cr3t-", 8)), 0o600); err != nil {
			h.authErr = err
		}
		for name, args := range map[string][]string{
			"rsa":     {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
			"ec":      {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
			"ed25519": {"-algorithm", "ED25519"},
		} {
			run(append(append([]string{"openssl", "genpkey"}, args...), "-out", filepath.Join(dir, name+".key"))...)
			run("openssl", "pkey", "-in", filepath.Join(dir, name+".key"), "-pubout", "-out", filepath.Join(dir, name+".pem"))
		}
	})
	return h.authErr
}

// authToken signs a token for variant with PyJWT (Debian's python3-jwt),
// the tests' independent issuer, valid for a day.
func (h *harness) authToken(alg, key string) (string, error) {
	dir := filepath.Join(h.work, "auth")
	keyFile := filepath.Join(dir, key)
	if alg != "HS256" {
		keyFile += ".key"
	}
	out, err := exec.Command("/usr/bin/python3", "-c", `import jwt, sys, time
key = open(sys.argv[1], "rb").read()
print(jwt.encode({"sub": "bench", "aud": "bench", "exp": int(time.time()) + 86400}, key, algorithm=sys.argv[2]))`, keyFile, alg).Output()
	if err != nil {
		return "", fmt.Errorf("signing a %s token with PyJWT: %v", alg, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (h *harness) authServers() []server {
	var out []server
	for _, v := range authVariants {
		s := server{name: v.name, start: func(h *harness, port int) (*proc, error) {
			route := "routes: [{path: /echo, app: echo}]"
			if v.alg != "" {
				if err := h.authKeys(); err != nil {
					return nil, err
				}
				keyKey, keyFile := "key_file", filepath.Join(h.work, "auth", v.key+".pem")
				if v.alg == "HS256" {
					keyKey, keyFile = "secret_file", filepath.Join(h.work, "auth", v.key)
				}
				route = fmt.Sprintf("routes: [{path: /echo, app: echo, auth: {jwt: {algorithms: [%s], %s: %q, audience: [bench]}}}]", v.alg, keyKey, keyFile)
			}
			return h.startDaemon(port, "auth.yaml", fmt.Sprintf(`listen: [{address: "127.0.0.1:%d"}]
log: {level: warn, access: false}
admin: {listen: "off"}
server: {max_connections: 0, max_connections_per_ip: 0, max_pending_handshakes: 0}
defaults: {origin_check: "off", keepalive_interval: 0, message_timeout: 0}
%s
`, port, route))
		}}
		if v.alg != "" {
			s.loadArgs = func(h *harness) ([]string, error) {
				if err := h.authKeys(); err != nil {
					return nil, err
				}
				tok, err := h.authToken(v.alg, v.key)
				if err != nil {
					return nil, err
				}
				return []string{"-header", "Authorization: Bearer " + tok}, nil
			}
		}
		out = append(out, s)
	}
	return out
}

// The "proxy" group measures a WebSocket server behind a proxy: the
// upstream (gws, the bench's peer server, on the same server core)
// alone; behind wsgate (backend: {upstream}), which checks every frame
// both ways; and behind nginx set up as its documentation proxies
// WebSockets (one worker process under its master, proxy_http_version
// 1.1, Upgrade and Connection passed on), which copies bytes; and
// behind a Go byte relay with an epoll loop of its own, the floor of what
// a proxy written in Go pays on this machine. The
// server's CPU time and RSS are the proxy's and the upstream's together
// for rates, the proxy's alone (with its children) for idle pairs.
func (h *harness) proxyServers() []server {
	upstream := func(h *harness) (*proc, int, error) {
		aport, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		up, err := h.peer("gws", aport)
		return up, aport, err
	}
	direct := server{name: "upstream alone", start: func(h *harness, port int) (*proc, error) {
		p, err := h.peer("gws", port)
		if p != nil {
			p.parts = []part{{"gws", p.pid}}
		}
		return p, err
	}}
	viaWsgate := server{name: "wsgate", start: func(h *harness, port int) (*proc, error) {
		up, aport, err := upstream(h)
		if err != nil {
			return nil, err
		}
		return h.daemonWith(port, fmt.Sprintf(`  - {path: /echo, backend: {upstream: ["ws://127.0.0.1:%d/echo"]}}`, aport), part{"gws", up.pid}, up)
	}}
	viaNginx := server{name: "nginx", peer: true, start: func(h *harness, port int) (*proc, error) {
		up, aport, err := upstream(h)
		if err != nil {
			return nil, err
		}
		n, err := h.nginx(port, aport)
		if err != nil {
			up.stop()
			return nil, err
		}
		parts := []part{{"nginx master", n.pid}}
		for _, w := range childPids(n.pid) {
			parts = append(parts, part{"nginx worker", w})
		}
		return &proc{pid: n.pid, children: true, parts: append(parts, part{"gws", up.pid}),
			stop: func() { n.stop(); up.stop() }}, nil
	}}
	// The floor: Go copying bytes through an epoll loop of its own, no
	// WebSocket work (bench/cmd/peers/relay_linux.go).
	viaRelay := server{name: "go relay (floor)", peer: true, start: func(h *harness, port int) (*proc, error) {
		up, aport, err := upstream(h)
		if err != nil {
			return nil, err
		}
		r, err := h.spawn(port, filepath.Join(h.work, "peers"), "-server", "relay", "-addr", "127.0.0.1:"+strconv.Itoa(port),
			"-upstream", "127.0.0.1:"+strconv.Itoa(aport))
		if err != nil {
			up.stop()
			return nil, err
		}
		return &proc{pid: r.pid, parts: []part{{"relay", r.pid}, {"gws", up.pid}}, stop: func() { r.stop(); up.stop() }}, nil
	}}
	return []server{direct, viaWsgate, viaNginx, viaRelay}
}

// nginx starts Debian's nginx on port in front of the upstream on aport,
// as nginx's "WebSocket proxying" documentation sets it up.
func (h *harness) nginx(port, aport int) (*proc, error) {
	dir, err := os.MkdirTemp(h.work, "nginx")
	if err != nil {
		return nil, err
	}
	conf, err := nginx.Config(dir, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", aport), 20000, "")
	if err != nil {
		return nil, err
	}
	return h.spawn(port, "/usr/sbin/nginx", "-c", conf, "-p", dir)
}

// childPids lists pid's children (/proc/PID/task/PID/children).
func childPids(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
