package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

// latency is a measurement's latency percentiles, each the median over
// its rounds.
func (m *measurement) latency() (p50, p99, p999 float64) {
	med := func(f func(r load.Result) float64) float64 {
		var xs []float64
		for _, r := range m.Results {
			xs = append(xs, f(r))
		}
		return spreadOf(xs).Med
	}
	return med(func(r load.Result) float64 { return r.P50 }), med(func(r load.Result) float64 { return r.P99 }), med(func(r load.Result) float64 { return r.P999 })
}

// advantage is wsgate's ratio to another server, oriented so that above 1
// means wsgate did better: rates divide wsgate by the peer, memory the
// peer by wsgate.
func advantage(group string, ws, other float64) float64 {
	if ws == 0 || other == 0 {
		return 0
	}
	if group == "idle" || group == "spike" || group == "apache-idle" || group == "idle-tls" {
		return other / ws
	}
	return ws / other
}

func format(group string, v float64) string {
	if group == "idle" || group == "apache-idle" || group == "idle-tls" {
		return fmt.Sprintf("%.2f KiB", v)
	}
	if group == "spike" {
		return fmt.Sprintf("%.2f×", v)
	}
	if group == "hold" {
		return fmt.Sprintf("%.0f", v)
	}
	if group == "apache-timeout" {
		return fmt.Sprintf("%.0f lost", v)
	}
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// printCase prints one case's line as soon as it is measured.
func printCase(c benchCase, ms []*measurement) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %-40s", c.group, c.label())
	for _, m := range ms {
		v := valueSpread(m)
		if !v.ok() {
			fmt.Fprintf(&b, " | %s failed", m.Server)
			continue
		}
		if m == ms[0] {
			fmt.Fprintf(&b, " | %s %s", m.Server, valueText(c.group, v))
		} else {
			fmt.Fprintf(&b, " | %s %s (%s)", m.Server, valueText(c.group, v), ratioText(shownSpread(c.group, pairedRatio(c.group, ms[0], m))))
		}
	}
	fmt.Println(b.String())
}

// describe says what machine and method produced the figures.
func describe(h *harness, rounds int, secs, took time.Duration) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	pin := "not pinned (taskset missing or one core)"
	if h.serverCPUs != "" {
		pin = fmt.Sprintf("servers on CPU %s, load generator on CPU %s (taskset)", h.serverCPUs, h.clientCPUs)
	}
	mode := "full matrix: every group in one run (`make bench`)"
	switch {
	case h.quick:
		mode = "quick mode (smoke test: the figures mean nothing)"
	case h.groups != "":
		mode = "partial run: only the groups " + h.groups + " (not the full matrix; `make bench` runs every group)"
	}
	apache := ""
	if out, err := exec.Command("/usr/sbin/apache2", "-v").Output(); err == nil {
		apache = ", " + strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "Server version: ")
	}
	return fmt.Sprintf("- Machine: %d × %s, Linux %s, %s%s\n- Pinning: %s\n- Method: %s; %d round(s), every server once per round in an order drawn afresh for each round (seed %d); echo and storm run %v each; figures are medians over rounds with the lowest and highest in brackets; run took %v\n- What else the machine was doing: at the start, %s; at the end, %s",
		runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version(), apache, pin, mode, rounds, h.seed, secs, took.Round(time.Second), h.before, h.after)
}

var groupTitles = map[string]string{
	"echo":           "Echo: messages per second (each connection sends, waits for the echo, repeats)",
	"deflate":        "permessage-deflate echo: messages per second (compressible text, no context takeover)",
	"idle":           "Idle hold: server RSS per idle connection (lower is better)",
	"apache-idle":    "Idle WebSockets in httpd (event MPM, 2 children of 25 threads: 50 workers, AsyncRequestWorkerFactor 250): RSS of httpd and its children per idle connection, against the daemon alone (lower is better). mod_wsgate releases the worker of an idle WebSocket; the busy workers below are counted by mod_status while the connections are held (one of them serves the status request)",
	"idle-tls":       "Idle wss: server RSS per idle connection over TLS, by record layer: crypto/tls throughout (record_layer go, the default) and wsgate's own after the upgrade (record_layer wsgate), with nothing pending, with one byte of a record sent, and with a record's header sent (the rest of the record follows only when the echo that ends the measurement is due). In parentheses record_layer wsgate's figure ÷ record_layer go's (lower is better)",
	"apache-timeout": "Idle WebSockets in httpd past its Timeout (event MPM, apache-idle's sizing, WsgateReleaseWorkers On: every idle worker released): clients that answer every ping as a browser does, over ws and over wss (mod_ssl) on one httpd, held idle, then each sends an echo. The figure is the connections httpd closed or lost while they idled (the bar is 0); below, per round, how many echoed at the end and how many pings they answered",
	"apache-parked":  "Broadcast to parked WebSockets in httpd (apache-idle's sizing: 50 workers, released while idle): 5,000 subscribers on the chat application, every one idle when a message comes (1.5 s before each, 5 messages): deliveries per second while a message fans out (the pauses not counted), and in the latency table the time from sending a message to every subscriber having it. The daemon alone for comparison",
	"spike":          "Memory after a spike: a flood of connections opened as fast as the server takes them, held 5 s, then all reset; the server's RSS 30 s later as a multiple of its RSS before the flood (lower is better; the bar is 2×)",
	"storm":          "Connect storm: handshakes per second (connect, upgrade, reset)",
	"broadcast":      "Broadcast: deliveries per second (each message relayed to every subscriber, 50 messages one after another)",
	"apache":         "Apache httpd: echo messages per second, mod_wsgate and httpd's proxy tunnel (mod_proxy_http) in front of the daemon",
	"direct":         "Direct mode: echo messages per second through a producer (examples/producers/echo), in the daemon's own process (in-process), behind the framed protocol (mux), and taking each client's socket itself (direct, ouistiti's direct mode). In parentheses each one's rate ÷ in-process's, paired round by round",
	"events":         "WebSocket-over-HTTP: echo messages per second through an HTTP application (examples/wsoverhttp/echo, Go's net/http: every message a POST), against the same echo in the daemon's own process (in-process) and behind the framed protocol (mux). In parentheses each one's rate ÷ in-process's, paired round by round",
	"events-php":     "PHP over WebSocket-over-HTTP: echo messages per second to examples/wsoverhttp/php/echo.php, behind the daemon (PHP's built-in server, 8 workers) and inside httpd as subrequests (mod_wsgate, php-cgi -b behind mod_proxy_fcgi, 8 children). In parentheses mod_wsgate's rate ÷ the daemon's, paired round by round",
	"hold":           "Held clients (backend hold): what holding costs and how long resuming takes, from the Go benchmarks in apps/backend (`go test ./apps/backend -run '^$' -bench 'HeldClientCost|HoldResume1000' -benchtime 5x`), medians over rounds",
	"cluster":        "Cluster: broadcast deliveries per second, 9,000 subscribers on one daemon, and spread over three daemons joined by a NATS server (3,000 each; the sender on the first), every process on the same server core. In parentheses the three nodes' rate ÷ one node's, paired round by round",
	"proxy":          "Proxy: a WebSocket server (gws, the bench's peer, on the server core too) alone, behind wsgate's validating proxy (backend: {upstream}: every frame checked both ways, each side's messages whole), behind nginx as its documentation proxies WebSockets (one worker, bytes copied after the 101), and behind go relay (floor), a Go program that copies bytes through an epoll loop of its own and checks nothing (bench/cmd/peers/relay_linux.go: what Go itself costs a proxy here). Echo messages per second, and, for idle pairs, the proxy's own RSS per pair (with nginx's master and worker; the upstream's not counted). In parentheses wsgate's advantage over each, paired round by round (rates: wsgate ÷ server; memory: server ÷ wsgate); below, the server CPU per message, proxy and upstream together",
	"auth":           "Auth at the handshake: handshakes per second (connect, upgrade, reset; 64 at a time) on one route with no auth, and with a JWT (audience checked) signed by PyJWT with an HMAC secret and with RSA 2048, EC P-256 and Ed25519 keys from openssl, sent in Authorization. In parentheses no auth's rate ÷ each one's, paired round by round; below, the server's CPU time per handshake",
	"ops":            "Operations cost: echo messages and handshakes per second, one build with limits, metrics and access log off (ops-off); every limit on and the metrics scraped each second (ops-on); and ops-on with the access log written to a file (ops-log). In parentheses each one's rate ÷ ops-off's, paired round by round",
}

// results is what benchmarks.json holds: enough to write the report again
// (bench -report) without measuring again.
type results struct {
	Machine      string         `json:"machine"`
	Measurements []*measurement `json:"measurements"`
}

// rewriteReport writes the report again from a benchmarks.json.
func rewriteReport(dir, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return writeReport(dir, r.Machine, r.Measurements)
}

func writeReport(dir, machine string, all []*measurement) error {
	raw, _ := json.MarshalIndent(results{Machine: machine, Measurements: all}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.json"), raw, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nGenerated by `make bench` (`bench/cmd/bench`); do not edit by hand. " +
		"Every figure below comes from the same run, on the same machine, with the same load generator " +
		"(`bench/cmd/load`, raw frames). Servers: `wsgate` is the daemon (`cmd/wsgate`); the peers are " +
		"`bench/cmd/peers`, each written as its library's documentation recommends; `tcp` is a plain TCP echo " +
		"in C over epoll that never blocks its loop (`bench/tcpecho`), with no WebSocket framing: the limit a " +
		"WebSocket server should stay under (a row where one does not is flagged). `wsgate` gets the peers' " +
		"treatment (no forced collection: `server.return_memory: false`); `wsgate as shipped` is the daemon's " +
		"defaults.\n\n")
	b.WriteString(machine + "\n\n")
	b.WriteString("Each cell is the median over the rounds, with the lowest and highest round in brackets. " +
		"In parentheses after a server's figure: wsgate's advantage over that server, oriented so that above 1.00 means wsgate did " +
		"better (for rates wsgate ÷ server; for memory server ÷ wsgate), computed in each round both completed (pairs are matched by " +
		"round, so a failed round leaves a hole) and given as the median with the lowest and highest round. The last column is, in each " +
		"round, wsgate against whichever peer library did best in that round, then the median and range over rounds. A row where the " +
		"load generator used 90% or more of its core measures the client and gets no ratio; a row where a server beat the tcp echo " +
		"says so under its table.\n\n![throughput by scenario and server](benchmarks.png)\n\n")
	var groups []string
	byGroup := map[string][]*measurement{}
	for _, m := range all {
		if _, ok := byGroup[m.Group]; !ok {
			groups = append(groups, m.Group)
		}
		byGroup[m.Group] = append(byGroup[m.Group], m)
	}
	for _, g := range groups {
		ms := byGroup[g]
		var servers, cases []string
		cell := map[[2]string]*measurement{}
		for _, m := range ms {
			if !slices.Contains(servers, m.Server) {
				servers = append(servers, m.Server)
			}
			if !slices.Contains(cases, m.Case) {
				cases = append(cases, m.Case)
			}
			cell[[2]string{m.Case, m.Server}] = m
		}
		// The reference column is wsgate where the group has it; a group
		// that compares two configurations of wsgate (ops) measures
		// against its first.
		ref := servers[0]
		if slices.Contains(servers, "wsgate") {
			ref = "wsgate"
		}
		var peers []string
		for _, sv := range servers {
			if isPeer(sv) {
				peers = append(peers, sv)
			}
		}
		last := ""
		if len(peers) > 0 {
			last = " wsgate ÷ the best peer of each round |"
		}
		fmt.Fprintf(&b, "## %s\n\n| case | %s |%s\n|---|%s%s\n", groupTitles[g],
			strings.Join(servers, " | "), last, strings.Repeat("---|", len(servers)), map[bool]string{true: "---|"}[last != ""])
		var lat strings.Builder
		fmt.Fprintf(&lat, "| latency p50 / p99 / p999 (µs) | %s |\n|---|%s\n", strings.Join(servers, " | "), strings.Repeat("---|", len(servers)))
		var flags []string
		for _, c := range cases {
			wsm := cell[[2]string{c, ref}]
			fmt.Fprintf(&b, "| %s |", c)
			fmt.Fprintf(&lat, "| %s |", c)
			for _, sv := range servers {
				m := cell[[2]string{c, sv}]
				v := valueSpread(m)
				switch {
				case m == nil:
					b.WriteString(" – |")
				case !v.ok():
					b.WriteString(" failed |")
				case sv == ref:
					fmt.Fprintf(&b, " **%s** |", valueText(g, v))
				case wsm == nil:
					fmt.Fprintf(&b, " %s |", valueText(g, v))
				default:
					fmt.Fprintf(&b, " %s (%s) |", valueText(g, v), ratioText(shownSpread(g, pairedRatio(g, wsm, m))))
				}
				if v.ok() {
					p50, p99, p999 := m.latency()
					fmt.Fprintf(&lat, " %.0f / %.0f / %.0f |", p50, p99, p999)
				} else {
					lat.WriteString(" – |")
				}
			}
			if last != "" {
				var pm []*measurement
				for _, sv := range peers {
					if m := cell[[2]string{c, sv}]; m != nil {
						pm = append(pm, m)
					}
				}
				cpu := 0.0
				if wsm != nil {
					cpu = clientCPU(wsm)
				}
				switch r := bestPeerRatio(g, wsm, pm); {
				case cpu >= clientBoundAt:
					fmt.Fprintf(&b, " client-bound (the load generator used %.0f%% of its core): no ratio |", 100*cpu)
					flags = append(flags, fmt.Sprintf("%s: the load generator used %.0f%% of its core, so the row measures the client; with two cores there is no faster client to put there, and no ratio is published", c, 100*cpu))
				case r.ok():
					fmt.Fprintf(&b, " %s |", ratioText(r))
				default:
					b.WriteString(" – |")
				}
			}
			b.WriteString("\n")
			lat.WriteString("\n")
			if f := belowLimit(g, c, servers, cell); f != "" {
				flags = append(flags, f)
			}
		}
		for _, f := range flags {
			fmt.Fprintf(&b, "\n- ⚠ %s", f)
		}
		if len(flags) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("\n")
		if g != "idle" && g != "hold" && g != "spike" && g != "apache-idle" && g != "apache-timeout" && g != "idle-tls" {
			b.WriteString(lat.String() + "\n")
		}
		if g == "ops" || g == "cluster" || g == "direct" || g == "auth" || g == "proxy" {
			b.WriteString(cpuTable(servers, cases, cell, ref))
		}
		if g == "cluster" {
			b.WriteString(rssTable(servers, cases, cell))
		}
		if g == "idle" || g == "idle-tls" || g == "apache-idle" {
			b.WriteString(totalTable(servers, cases, cell))
		}
		if g == "apache-idle" {
			b.WriteString(workersLine(ms))
		}
		if g == "apache-timeout" {
			b.WriteString(holdLine(ms))
		}
		for _, m := range ms {
			if m.Error != "" {
				fmt.Fprintf(&b, "- %s / %s failed: `%s`\n", m.Case, m.Server, strings.ReplaceAll(m.Error, "\n", " "))
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "BENCHMARKS.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	// The plot (benchmarks.png) is drawn by bench/plot, a module of its
	// own, so that the tests, which run this harness, never fetch a
	// plotting library.
	return nil
}

// cpuTable is the server's CPU time per operation for each case, and in
// parentheses each server's ÷ the reference's, paired round by round: the
// figure that says what a configuration costs when the machine's
// neighbours make rates vary by more than the difference.
func cpuTable(servers, cases []string, cell map[[2]string]*measurement, ref string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| server CPU per operation (µs) | %s |\n|---|%s\n", strings.Join(servers, " | "), strings.Repeat("---|", len(servers)))
	for _, c := range cases {
		fmt.Fprintf(&b, "| %s |", c)
		r := cell[[2]string{c, ref}]
		for _, s := range servers {
			m := cell[[2]string{c, s}]
			if m == nil || len(m.Results) == 0 || m.Results[0].ServerCPU == 0 {
				b.WriteString(" – |")
				continue
			}
			v := medianOf(m.Results, func(x load.Result) float64 { return x.ServerCPU })
			if s == ref || r == nil {
				fmt.Fprintf(&b, " %.1f |", v)
				continue
			}
			// Paired by round, as every ratio.
			rr, mr := rounds(r), rounds(m)
			var ratios []float64
			for _, k := range sortedKeys(rr) {
				if o, ok := mr[k]; ok && rr[k].ServerCPU > 0 && o.ServerCPU > 0 {
					ratios = append(ratios, o.ServerCPU/rr[k].ServerCPU)
				}
			}
			fmt.Fprintf(&b, " %.1f (%s) |", v, ratioText(spreadOf(ratios)))
		}
		b.WriteString("\n")
	}
	return b.String() + "\n"
}

// totalTable is, for the idle groups, each server's whole footprint with
// the connections held: RSS and PSS in MiB (medians over rounds), what a
// per-connection figure leaves out (the base a server starts with).
func totalTable(servers, cases []string, cell map[[2]string]*measurement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| total with the connections held: RSS / PSS (MiB) | %s |\n|---|%s\n", strings.Join(servers, " | "), strings.Repeat("---|", len(servers)))
	for _, c := range cases {
		fmt.Fprintf(&b, "| %s |", c)
		for _, sv := range servers {
			m := cell[[2]string{c, sv}]
			if m == nil || len(m.Results) == 0 {
				b.WriteString(" – |")
				continue
			}
			rss := medianOf(m.Results, func(x load.Result) float64 { return float64(x.RSSAfter) })
			pss := medianOf(m.Results, func(x load.Result) float64 { return float64(x.PSSAfter) })
			before := medianOf(m.Results, func(x load.Result) float64 { return float64(x.RSSBefore) })
			fmt.Fprintf(&b, " %.1f / %.1f (base %.1f) |", rss/1024, pss/1024, before/1024)
		}
		b.WriteString("\n")
	}
	return b.String() + "\n"
}

// rssTable is, for servers of several processes, each process's RSS at
// the end of the run (the median over rounds), in MiB.
func rssTable(servers, cases []string, cell map[[2]string]*measurement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| RSS of each process after the run (MiB) | %s |\n|---|%s\n", strings.Join(servers, " | "), strings.Repeat("---|", len(servers)))
	for _, c := range cases {
		fmt.Fprintf(&b, "| %s |", c)
		for _, s := range servers {
			m := cell[[2]string{c, s}]
			if m == nil || len(m.Results) == 0 || len(m.Results[0].ProcessRSS) == 0 {
				b.WriteString(" – |")
				continue
			}
			names := slices.Sorted(maps.Keys(m.Results[0].ProcessRSS))
			var parts []string
			for _, name := range names {
				v := medianOf(m.Results, func(x load.Result) float64 { return float64(x.ProcessRSS[name]) })
				parts = append(parts, fmt.Sprintf("%s %.0f", name, v/1024))
			}
			fmt.Fprintf(&b, " %s |", strings.Join(parts, ", "))
		}
		b.WriteString("\n")
	}
	return b.String() + "\n"
}

// medianOf is the median of f over rs.
func medianOf(rs []load.Result, f func(load.Result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[n/2]
}

// shownSpread is shownRatio applied to a spread (the ends swap when it
// inverts).
func shownSpread(group string, s spread) spread {
	if !s.ok() {
		return s
	}
	med, lo, hi := shownRatio(group, s.Med), shownRatio(group, s.Lo), shownRatio(group, s.Hi)
	if lo > hi {
		lo, hi = hi, lo
	}
	return spread{Med: med, Lo: lo, Hi: hi, N: s.N}
}

// belowLimit flags a row where a server beat the physical limit (tcp):
// then tcp was not the limit there, and the row says so.
func belowLimit(group, c string, servers []string, cell map[[2]string]*measurement) string {
	t := valueSpread(cell[[2]string{c, "tcp"}])
	if !t.ok() {
		return ""
	}
	var over []string
	for _, sv := range servers {
		if sv == "tcp" {
			continue
		}
		if v := valueSpread(cell[[2]string{c, sv}]); v.ok() && v.Med > t.Med {
			over = append(over, fmt.Sprintf("%s %s", sv, format(group, v.Med)))
		}
	}
	if len(over) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: the tcp echo (%s) is below %s: here it is not the limit", c, format(group, t.Med), strings.Join(over, ", "))
}

// shownRatio is the ratio a table shows for an advantage of the
// reference server over another: the advantage itself, except in the ops
// group, whose reference is the configuration with everything off and
// whose question is what each other configuration keeps of its rate.
func shownRatio(group string, a float64) float64 {
	if (group == "ops" || group == "cluster" || group == "direct" || group == "events" || group == "events-php") && a > 0 {
		return 1 / a
	}
	return a
}

func isPeer(s string) bool {
	switch s {
	case "gorilla", "coder", "gws", "nbio":
		return true
	}
	return false
}

// holdLine says, per round, how the held clients ended: how many echoed
// after the hold, how many pings they answered, and when the first was
// lost.
func holdLine(ms []*measurement) string {
	var b strings.Builder
	for _, m := range ms {
		var rounds []string
		for _, r := range m.Results {
			s := fmt.Sprintf("%d of %d echoed after the hold, %d pings answered, RSS %.0f→%.0f MiB", r.Count, r.Conns, r.Pongs, float64(r.RSSBefore)/1024, float64(r.RSSAfter)/1024)
			if r.Lost > 0 {
				s += fmt.Sprintf(", the first lost after %.1f s", r.FirstLost)
			}
			rounds = append(rounds, s)
		}
		if len(rounds) > 0 {
			fmt.Fprintf(&b, "- %s / %s: %s\n", m.Case, m.Server, strings.Join(rounds, "; "))
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// workersLine says how many httpd workers the idle connections kept busy,
// from mod_status's scoreboard in each round.
func workersLine(ms []*measurement) string {
	var b strings.Builder
	for _, m := range ms {
		var busy []string
		for _, r := range m.Results {
			if r.BusyWorkers > 0 || r.IdleWorkers > 0 {
				busy = append(busy, fmt.Sprintf("%d busy, %d idle", r.BusyWorkers, r.IdleWorkers))
			}
		}
		if len(busy) > 0 {
			fmt.Fprintf(&b, "- %s / %s: workers while held (mod_status, per round): %s\n", m.Case, m.Server, strings.Join(busy, "; "))
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// machineState says what the machine was doing: the load average and
// the processes that used more than 5% of a core over one second, other
// than this one.
func machineState() string {
	type sample struct {
		name string
		cpu  time.Duration
	}
	read := func() map[int]sample {
		out := map[int]sample{}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
			if i < 0 || j < i {
				continue
			}
			out[pid] = sample{string(b[i+1 : j]), load.CPUTime(pid)}
		}
		return out
	}
	a := read()
	time.Sleep(time.Second)
	z := read()
	var busy []string
	for pid, s := range z {
		if p, ok := a[pid]; ok && s.cpu-p.cpu > 50*time.Millisecond {
			busy = append(busy, fmt.Sprintf("%s %d%%", s.name, (s.cpu-p.cpu)*100/time.Second))
		}
	}
	slices.Sort(busy)
	avg, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(avg))
	state := "load average " + strings.Join(f[:min(3, len(f))], " ")
	if len(busy) == 0 {
		return state + "; no other process used more than 5% of a core"
	}
	return state + "; busy: " + strings.Join(busy, ", ")
}
