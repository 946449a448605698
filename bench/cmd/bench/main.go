// Command bench runs the benchmark matrix: every scenario against wsgate
// and its peers, in one run, on this machine, with one load generator.
//
//	cd bench && go run ./cmd/bench -out ../docs     # the whole matrix (make bench)
//	cd bench && go run ./cmd/bench -quick           # a smoke test of the harness (CI)
//
// Each measurement starts a fresh server process pinned to the server's
// cores and runs the load generator (cmd/load) pinned to the others. The
// servers take turns within each case, round after round, each round
// starting one server later (A B C, B C A, C A B), so that a machine that
// slows down for a while slows everyone down and no server always runs
// first. It
// writes BENCHMARKS.md (tables with wsgate's ratio to each peer),
// benchmarks.png (the plot) and benchmarks.json (every raw result).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

type harness struct {
	// authOnce makes the auth group's keys (authKeys).
	authOnce   sync.Once
	authErr    error
	work       string
	root       string // the wsgate repository
	serverCPUs string
	clientCPUs string
	quick      bool
	verbose    bool
	seed       uint64 // of the servers' order in each round
	groups     string // -only: the groups run, "" for all
	// before and after say what else the machine was doing when the run
	// began and ended (machineState).
	before, after string
}

// benchCase is one row of a table: a scenario with its parameters, run
// against each of servers.
type benchCase struct {
	group    string // the table it belongs to
	scenario string // echo, deflate, idle, storm, broadcast
	conns    int
	size     int
	servers  []server
	args     []string // extra load generator flags
	path     string
	tls      bool // wss: the servers listen with TLS
	// hold: the hold scenario's length (idle clients answering pings).
	hold time.Duration
	// pending: over wss, the bytes of a TLS record each idle client
	// leaves sent (load idle -pending).
	pending int
	// note is added to the label.
	note string
	// rounds, if set, is how many rounds the case runs at most: a count
	// of losses over a long hold, not a rate compared with others, needs
	// no more than one.
	rounds int
	// keepAlive: the clients are plain HTTP keep-alive connections (one
	// request each, then idle), not WebSockets: what a server keeps for
	// any idle client.
	keepAlive bool
}

func (c benchCase) label() string {
	switch c.scenario {
	case "idle":
		if c.keepAlive {
			return fmt.Sprintf("%d idle HTTP keep-alive connections, no WebSocket (what httpd keeps for any idle client)", c.conns)
		}
		if c.tls {
			switch {
			case c.note != "":
				return fmt.Sprintf("%d idle connections over TLS (wss), %s", c.conns, c.note)
			case c.pending == 1:
				return fmt.Sprintf("%d idle connections over TLS (wss), 1 byte of a record pending", c.conns)
			case c.pending == 5:
				return fmt.Sprintf("%d idle connections over TLS (wss), a record's header pending", c.conns)
			case c.pending > 0:
				return fmt.Sprintf("%d idle connections over TLS (wss), %d bytes of a record pending", c.conns, c.pending)
			}
			return fmt.Sprintf("%d idle connections over TLS (wss)", c.conns)
		}
		if c.note != "" {
			return fmt.Sprintf("%d idle connections, %s", c.conns, c.note)
		}
		return fmt.Sprintf("%d idle connections", c.conns)
	case "spike":
		return fmt.Sprintf("a flood of %d connections, closed: RSS 30 s later ÷ RSS before", c.conns)
	case "storm":
		return fmt.Sprintf("handshakes, %d concurrent clients", c.conns)
	case "survive":
		return fmt.Sprintf("%d ws + %d wss idle clients held %v, %s", c.conns, c.conns, c.hold, c.servers[0].note)
	case "broadcast":
		if c.group == "apache-parked" {
			return fmt.Sprintf("1 message × %d parked subscribers, %s", c.conns, size(c.size))
		}
		return fmt.Sprintf("1 message × %d subscribers, %s", c.conns, size(c.size))
	}
	return fmt.Sprintf("%d conn × %s", c.conns, size(c.size))
}

func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// measurement is what the tables and the plot are built from.
type measurement struct {
	Case    string        `json:"case"`
	Group   string        `json:"group"`
	Server  string        `json:"server"`
	Results []load.Result `json:"results"`
	Error   string        `json:"error,omitempty"`
}

func main() {
	quick := flag.Bool("quick", false, "smoke test: tiny counts, one round, a few seconds per scenario")
	out := flag.String("out", "", "directory for BENCHMARKS.md, benchmarks.png and benchmarks.json (default: a temporary directory)")
	rounds := flag.Int("rounds", 5, "rounds of each case (each server once per round, in an order drawn for each round)")
	seed := flag.Uint64("seed", 0, "seed of the servers' order in each round (0: from the clock; the report names it)")
	secs := flag.Duration("duration", 2*time.Second, "length of each echo and storm measurement")
	only := flag.String("only", "", "comma-separated groups to run (echo, deflate, idle, spike, storm, broadcast, ops, auth, proxy, direct, events, cluster, apache, apache-idle, apache-timeout, events-php, hold, idle-tls)")
	apache := flag.String("apache", "auto", "the Apache group: on, off, or auto (on when apache2 and apxs are installed)")
	verbose := flag.Bool("v", false, "print each result as it comes")
	report := flag.String("report", "", "write the report again from this benchmarks.json instead of measuring")
	flag.Parse()
	if *report != "" {
		if *out == "" {
			*out = filepath.Dir(*report)
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fatal(err)
		}
		if err := rewriteReport(*out, *report); err != nil {
			fatal(err)
		}
		return
	}

	h := &harness{quick: *quick, verbose: *verbose}
	var err error
	if h.work, err = os.MkdirTemp("", "wsgate-bench"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(h.work)
	os.Chmod(h.work, 0o755) // httpd's children run as www-data
	wd, _ := os.Getwd()
	h.root = filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(h.root, "cmd", "wsgate")); err != nil {
		fatal(fmt.Errorf("run bench from the repository's bench directory"))
	}
	if *quick {
		*rounds = 1
		*secs = 300 * time.Millisecond
	}
	if *out == "" {
		*out = h.work + "-out"
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	h.pin()
	useApache := *apache == "on" || (*apache == "auto" && haveApache())
	if err := h.build(useApache); err != nil {
		fatal(err)
	}
	cases := h.matrix(*secs, useApache)
	want := map[string]bool{}
	for _, g := range strings.Split(*only, ",") {
		if g != "" {
			want[g] = true
		}
	}
	started := time.Now()
	if *seed == 0 {
		*seed = uint64(started.UnixNano())
	}
	h.seed = *seed
	h.groups = *only
	h.before = machineState()
	var all []*measurement
	failed := 0
	for ci, c := range cases {
		if len(want) > 0 && !want[c.group] {
			continue
		}
		ms := make([]*measurement, len(c.servers))
		for i, s := range c.servers {
			ms[i] = &measurement{Case: c.label(), Group: c.group, Server: s.name}
			all = append(all, ms[i])
		}
		// The servers' order is drawn afresh for every round, so that none
		// is always first (right after the previous case's teardown) or
		// always last, nor always right after the same neighbour.
		order := rand.New(rand.NewPCG(h.seed, uint64(ci)))
		n := *rounds
		if c.rounds > 0 {
			n = min(n, c.rounds)
		}
		for round := range n {
			for _, i := range order.Perm(len(c.servers)) {
				s := c.servers[i]
				r, err := h.measure(c, s)
				if err != nil {
					ms[i].Error = err.Error()
					fmt.Fprintf(os.Stderr, "%s / %s / %s: %v\n", c.group, c.label(), s.name, err)
					failed++
					continue
				}
				r.Round = round + 1
				ms[i].Results = append(ms[i].Results, r)
				if h.verbose {
					fmt.Printf("round %d %-9s %-40s %-12s %12.0f\n", round+1, c.group, c.label(), s.name, value(r))
				}
			}
		}
		printCase(c, ms)
	}
	if len(want) == 0 || want["hold"] {
		ms, err := h.measureHold(*rounds)
		all = append(all, ms...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed++
		}
		for _, m := range ms {
			if v := valueSpread(m); v.ok() {
				fmt.Printf("%-9s %-40s %12.1f\n", m.Group, m.Case, v.Med)
			}
		}
	}
	took := time.Since(started)
	h.after = machineState()
	m := describe(h, *rounds, *secs, took)
	if err := writeReport(*out, m, all); err != nil {
		fatal(err)
	}
	fmt.Printf("\n%s\nwrote %s in %v\n", m, filepath.Join(*out, "BENCHMARKS.md"), took.Round(time.Second))
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d measurements failed\n", failed)
		os.Exit(1)
	}
}

// pin splits the machine: the server gets the first core, the load
// generator the rest, so that neither steals the other's time slices.
func (h *harness) pin() {
	n := runtime.NumCPU()
	if _, err := exec.LookPath("taskset"); err != nil || n < 2 {
		return
	}
	h.serverCPUs = "0"
	if n >= 4 {
		h.serverCPUs = fmt.Sprintf("0-%d", n/2-1)
	}
	half := 1
	if n >= 4 {
		half = n / 2
	}
	h.clientCPUs = fmt.Sprintf("%d-%d", half, n-1)
}

func haveApache() bool {
	_, e1 := os.Stat("/usr/sbin/apache2")
	_, e2 := exec.LookPath("apxs")
	if e2 != nil {
		_, e2 = os.Stat("/usr/bin/apxs")
	}
	return e1 == nil && e2 == nil
}

func (h *harness) build(apache bool) error {
	run := func(dir string, argv ...string) error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return nil
	}
	bench := filepath.Join(h.root, "bench")
	if err := run(h.root, "go", "build", "-o", filepath.Join(h.work, "wsgate"), "./cmd/wsgate"); err != nil {
		return err
	}
	if err := run(h.root, "go", "build", "-o", filepath.Join(h.work, "echo-producer"), "./examples/producers/echo"); err != nil {
		return err
	}
	if err := run(h.root, "go", "build", "-o", filepath.Join(h.work, "events-echo"), "./examples/wsoverhttp/echo"); err != nil {
		return err
	}
	for _, cmd := range []string{"peers", "load"} {
		if err := run(bench, "go", "build", "-o", filepath.Join(h.work, cmd), "./cmd/"+cmd); err != nil {
			return err
		}
	}
	if err := run(bench, "cc", "-O2", "-Wall", "-Wextra", "-pthread", "-o", filepath.Join(h.work, "tcpecho"), "tcpecho/tcpecho.c"); err != nil {
		return err
	}
	if apache {
		return run(h.root, "make", "-s", "-C", "frontdoor/apache", "OUT="+filepath.Join(h.work, "build"))
	}
	return nil
}

func (h *harness) matrix(secs time.Duration, apache bool) []benchCase {
	servers := h.servers()
	wsFor := func(scenario string) []server {
		var l []server
		for _, s := range servers {
			if !s.skip[scenario] {
				l = append(l, s)
			}
		}
		return l
	}
	d := []string{"-duration", secs.String()}
	conns, sizes := []int{1, 100, 1000}, []int{16, 1 << 10, 64 << 10}
	idleN, bcastN, bcastMsgs, settle, pingedSettle := 10000, 10000, 50, "5s", "60s"
	// The flood is what one client process can open under the machine's
	// descriptor limit (20,000 here).
	tlsN, spikeN, watch, apacheIdleN := 5000, 19000, "30s", 5000
	// Issue 23's idle clients in httpd: at Timeout 4, 1,000 of each for
	// 60 s; at the default Timeout (60), 5,000 of each for 5 minutes.
	timeoutN, timeoutHold, defaultN, defaultHold, shortTimeout := 1000, time.Minute, 5000, 5*time.Minute, 4
	parkedMsgs := 5
	proxyIdleN := 5000
	zConns, zSizes := []int{100}, []int{1 << 10, 64 << 10}
	aConns, aSizes := []int{1, 100}, []int{16, 1 << 10}
	if h.quick {
		conns, sizes = []int{1, 10}, []int{16, 1 << 10}
		idleN, bcastN, bcastMsgs, settle, pingedSettle = 200, 100, 5, "500ms", "1s"
		tlsN, spikeN, watch, apacheIdleN = 100, 300, "2s", 20
		timeoutN, timeoutHold, defaultN, defaultHold, shortTimeout = 20, 5*time.Second, 20, 5*time.Second, 2
		parkedMsgs = 2
		proxyIdleN = 100
		zConns, zSizes = []int{10}, []int{1 << 10}
		aConns, aSizes = []int{1, 10}, []int{16}
	}
	var cs []benchCase
	for _, c := range conns {
		for _, s := range sizes {
			cs = append(cs, benchCase{group: "echo", scenario: "echo", conns: c, size: s, path: "/echo", servers: wsFor("echo"), args: d})
		}
	}
	for _, c := range zConns {
		for _, s := range zSizes {
			cs = append(cs, benchCase{group: "deflate", scenario: "deflate", conns: c, size: s, path: "/echo-deflate", servers: wsFor("deflate"), args: d})
		}
	}
	cs = append(cs,
		// The headline: every server the same treatment (no forced
		// collection, no pings), and wsgate as shipped beside it.
		benchCase{group: "idle", scenario: "idle", conns: idleN, path: "/echo", servers: append(wsFor("idle"), shippedServer("wsgate as shipped")), args: []string{"-settle", settle}},
		// What users run: the default route settings, held through two
		// rounds of pings (a ping after 25 s of quiet).
		benchCase{group: "idle", scenario: "idle", conns: idleN, path: "/echo", servers: []server{shippedServer("wsgate as shipped"), defaultsServer("wsgate, default settings")}, args: []string{"-settle", pingedSettle, "-pings"}, note: "answering pings, held " + pingedSettle + ": every connection pinged twice"},
		benchCase{group: "idle-tls", scenario: "idle", conns: tlsN, path: "/echo", servers: h.recordLayerServers(), args: []string{"-settle", settle}, tls: true},
		benchCase{group: "idle-tls", scenario: "idle", conns: tlsN, path: "/echo", servers: h.recordLayerServers(), args: []string{"-settle", settle, "-pending", "1"}, tls: true, pending: 1},
		benchCase{group: "idle-tls", scenario: "idle", conns: tlsN, path: "/echo", servers: h.recordLayerServers(), args: []string{"-settle", settle, "-pending", "5"}, tls: true, pending: 5},
		// As users run it: the default route settings, clients answering
		// two rounds of pings.
		benchCase{group: "idle-tls", scenario: "idle", conns: tlsN, path: "/echo", servers: []server{defaultsTLSServer("record_layer go", "go"), defaultsTLSServer("record_layer wsgate", "wsgate")},
			args: []string{"-settle", pingedSettle, "-pings"}, tls: true, note: "default route settings, answering pings, held " + pingedSettle, rounds: 3},
		benchCase{group: "spike", scenario: "spike", conns: spikeN, path: "/echo", servers: []server{shippedServer("wsgate")}, args: []string{"-settle", settle, "-watch", watch}},
		benchCase{group: "storm", scenario: "storm", conns: 64, path: "/echo", servers: wsFor("storm"), args: d},
		benchCase{group: "broadcast", scenario: "broadcast", conns: bcastN, size: 64, path: "/broadcast", servers: wsFor("broadcast"),
			args: []string{"-msgs", strconv.Itoa(bcastMsgs)}},
	)
	ops := h.opsServers()
	oConns := []int{1, 100}
	if h.quick {
		oConns = []int{1, 10}
	}
	for _, c := range oConns {
		cs = append(cs, benchCase{group: "ops", scenario: "echo", conns: c, size: 16, path: "/echo", servers: ops, args: d})
	}
	cs = append(cs, benchCase{group: "ops", scenario: "storm", conns: 64, path: "/echo", servers: ops, args: d})
	// A WebSocket server behind wsgate's proxy and behind nginx.
	for _, c := range conns {
		for _, s := range sizes {
			cs = append(cs, benchCase{group: "proxy", scenario: "echo", conns: c, size: s, path: "/echo", servers: h.proxyServers(), args: d})
		}
	}
	cs = append(cs, benchCase{group: "proxy", scenario: "idle", conns: proxyIdleN, path: "/echo", servers: h.proxyServers(), args: []string{"-settle", settle}})
	// What checking a token costs a handshake, by kind of key.
	cs = append(cs, benchCase{group: "auth", scenario: "storm", conns: 64, path: "/echo", servers: h.authServers(), args: d})
	for _, c := range oConns {
		for _, sz := range []int{16, 1 << 10} {
			cs = append(cs, benchCase{group: "direct", scenario: "echo", conns: c, size: sz, path: "/echo", servers: h.directServers(), args: d})
		}
	}
	for _, c := range oConns {
		cs = append(cs, benchCase{group: "events", scenario: "echo", conns: c, size: 16, path: "/echo", servers: h.eventsServers(), args: d})
	}
	cluster := benchCase{group: "cluster", scenario: "broadcast", conns: 9000, size: 64, path: "/broadcast", servers: h.clusterServers(),
		args: []string{"-msgs", strconv.Itoa(bcastMsgs)}}
	if h.quick {
		cluster.conns = 300
	}
	cs = append(cs, cluster)
	if apache {
		as := append([]server{servers[0]}, h.apacheServers()...)
		for _, c := range aConns {
			for _, s := range aSizes {
				cs = append(cs, benchCase{group: "apache", scenario: "echo", conns: c, size: s, path: "/echo", servers: as, args: d})
			}
		}
		// Idle WebSockets in httpd, ws and wss, held by 50 workers (the
		// scoreboard's busy count is reported).
		cs = append(cs,
			benchCase{group: "apache-idle", scenario: "idle", conns: apacheIdleN, path: "/echo", servers: h.idleApacheServers(false), args: []string{"-settle", settle}},
			benchCase{group: "apache-idle", scenario: "idle", conns: apacheIdleN, path: "/echo", servers: h.idleApacheServers(true), args: []string{"-settle", settle}, tls: true},
			// What any idle connection costs httpd: the same server, the
			// same waiting state in the event MPM, no WebSocket.
			benchCase{group: "apache-idle", scenario: "idle", conns: apacheIdleN, path: "/floor", servers: []server{h.keepAliveApache()}, args: []string{"-settle", settle}, keepAlive: true},
			// A broadcast reaches every one of them while they are parked:
			// 1.5 s before each message outlasts both servers' park delays
			// (the daemon's second, mod_wsgate's 20 ms).
			benchCase{group: "apache-parked", scenario: "broadcast", conns: apacheIdleN, size: 64, path: "/broadcast", servers: h.parkedApacheServers(),
				args: []string{"-msgs", strconv.Itoa(parkedMsgs), "-gap", "1500ms"}})
		// Idle clients that answer every ping survive httpd's Timeout
		// with their workers released: nothing lost, every one echoes.
		cs = append(cs,
			benchCase{group: "apache-timeout", scenario: "survive", conns: timeoutN, hold: timeoutHold, path: "/echo", tls: true, servers: []server{h.timeoutApache(shortTimeout)}, rounds: 2},
			benchCase{group: "apache-timeout", scenario: "survive", conns: defaultN, hold: defaultHold, path: "/echo", tls: true, servers: []server{h.timeoutApache(0)}, rounds: 1})
		if php := h.phpServers(); php != nil {
			for _, c := range aConns {
				cs = append(cs, benchCase{group: "events-php", scenario: "echo", conns: c, size: 16, path: "/echo", servers: php, args: d})
			}
		}
	}
	return cs
}

// measure starts s, runs c's load against it, and stops it.
func (h *harness) measure(c benchCase, s server) (load.Result, error) {
	// A port freePort found may be taken by the time the server binds it
	// (the load generator's own connections use ephemeral ports): a
	// server that does not start gets two more tries on other ports.
	var port int
	var p *proc
	var err error
	for try := 0; try < 3; try++ {
		if port, err = freePort(); err != nil {
			return load.Result{}, err
		}
		if p, err = s.start(h, port); err == nil {
			break
		}
	}
	if err != nil {
		return load.Result{}, err
	}
	defer p.stop()
	scheme := "ws"
	if c.tls {
		scheme = "wss"
	}
	if c.keepAlive {
		scheme = "http"
	}
	url := fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, c.path)
	for _, p := range p.ports {
		url += fmt.Sprintf(",ws://127.0.0.1:%d%s", p, c.path)
	}
	scenario := c.scenario
	args := []string{"-url", url}
	switch c.scenario {
	case "echo", "deflate":
		scenario = "echo"
		args = append(args, "-conns", strconv.Itoa(c.conns), "-size", strconv.Itoa(c.size))
		if s.name == "tcp" {
			args = append(args, "-raw")
		}
		if c.scenario == "deflate" {
			args = append(args, "-deflate", "-text")
		}
	case "survive":
		args = append(args, "-n", strconv.Itoa(c.conns), "-pid", strconv.Itoa(p.pid), "-duration", c.hold.String())
		if p.children {
			args = append(args, "-children")
		}
	case "idle", "spike":
		args = append(args, "-n", strconv.Itoa(c.conns), "-pid", strconv.Itoa(p.pid))
		if p.children {
			args = append(args, "-children")
		}
		if p.status != "" && c.scenario == "idle" {
			args = append(args, "-status", p.status)
		}
	case "storm":
		args = append(args, "-conc", strconv.Itoa(c.conns))
	case "broadcast":
		args = append(args, "-n", strconv.Itoa(c.conns), "-size", strconv.Itoa(c.size))
	}
	args = append(args, c.args...)
	if s.loadArgs != nil {
		extra, err := s.loadArgs(h)
		if err != nil {
			return load.Result{}, err
		}
		args = append(args, extra...)
	}
	argv := append([]string{filepath.Join(h.work, "load"), scenario}, args...)
	argv = pinned(h.clientCPUs, argv)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+c.hold)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cpu := func() time.Duration {
		if len(p.parts) == 0 {
			return load.CPUTime(p.pid)
		}
		var t time.Duration
		for _, pt := range p.parts {
			t += load.CPUTime(pt.pid)
		}
		return t
	}
	cpu0 := cpu()
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return load.Result{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	wall := time.Since(t0)
	cpu1 := cpu()
	var r load.Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("load's output: %v: %q", err, stdout.String())
	}
	if len(p.parts) > 0 {
		r.ProcessRSS = map[string]int64{}
		for _, pt := range p.parts {
			r.ProcessRSS[pt.name] = load.RSS(pt.pid, false)
		}
	}
	if r.Count > 0 && cpu1 > cpu0 && (!p.children || len(p.parts) > 0) {
		r.ServerCPU = (cpu1 - cpu0).Seconds() * 1e6 / float64(r.Count)
	}
	if ps := cmd.ProcessState; ps != nil && wall > 0 {
		r.ClientCPU = (ps.UserTime() + ps.SystemTime()).Seconds() / wall.Seconds()
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%d connections failed during the run", r.Errors)
	}
	return r, nil
}

// value is the figure a table shows: the rate, for idle the KiB per
// connection, for spike RSS after the flood as a multiple of before.
func value(r load.Result) float64 {
	if r.Scenario == "idle" {
		return r.PerConnKiB
	}
	if r.Scenario == "survive" {
		return float64(r.Lost)
	}
	if r.Scenario == "spike" {
		if r.RSSBefore == 0 {
			return 0
		}
		return float64(r.RSSAfter) / float64(r.RSSBefore)
	}
	return r.Rate
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
