package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

// median is a measurement's figure over its rounds: the median, which one
// round disturbed by the machine (a noisy neighbour, a CPU frequency
// change) cannot move, with the latencies of the same rounds (medians of
// each percentile).
func (m *measurement) median() (v, p50, p99, p999 float64, ok bool) {
	if len(m.Results) == 0 {
		return 0, 0, 0, 0, false
	}
	med := func(f func(r load.Result) float64) float64 {
		xs := make([]float64, len(m.Results))
		for i, r := range m.Results {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		if n := len(xs); n%2 == 0 {
			return (xs[n/2-1] + xs[n/2]) / 2
		}
		return xs[len(xs)/2]
	}
	return med(value), med(func(r load.Result) float64 { return r.P50 }),
		med(func(r load.Result) float64 { return r.P99 }), med(func(r load.Result) float64 { return r.P999 }), true
}

// pairedAdvantage is wsgate's advantage over another server, round by
// round: each round ran the two back to back, so their ratio is less
// exposed to the machine's slow drifts than a ratio of medians. It returns
// the median of the rounds' advantages.
func pairedAdvantage(group string, ws, other *measurement) float64 {
	n := min(len(ws.Results), len(other.Results))
	if n == 0 {
		return 0
	}
	rs := make([]float64, n)
	for i := range n {
		rs[i] = advantage(group, value(ws.Results[i]), value(other.Results[i]))
	}
	slices.Sort(rs)
	if n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2
	}
	return rs[n/2]
}

// advantage is wsgate's ratio to another server, oriented so that above 1
// means wsgate did better: rates divide wsgate by the peer, memory the
// peer by wsgate.
func advantage(group string, ws, other float64) float64 {
	if ws == 0 || other == 0 {
		return 0
	}
	if group == "idle" || group == "spike" || group == "apache-idle" {
		return other / ws
	}
	return ws / other
}

func format(group string, v float64) string {
	if group == "idle" || group == "apache-idle" {
		return fmt.Sprintf("%.2f KiB", v)
	}
	if group == "spike" {
		return fmt.Sprintf("%.2f×", v)
	}
	if group == "hold" {
		return fmt.Sprintf("%.0f", v)
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
		v, _, _, _, ok := m.median()
		if !ok {
			fmt.Fprintf(&b, " | %s failed", m.Server)
			continue
		}
		if m == ms[0] {
			fmt.Fprintf(&b, " | %s %s", m.Server, format(c.group, v))
		} else {
			fmt.Fprintf(&b, " | %s %s (%.2f)", m.Server, format(c.group, v), shownRatio(c.group, pairedAdvantage(c.group, ms[0], m)))
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
	mode := "full matrix"
	if h.quick {
		mode = "quick mode (smoke test: the figures mean nothing)"
	}
	apache := ""
	if out, err := exec.Command("/usr/sbin/apache2", "-v").Output(); err == nil {
		apache = ", " + strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "Server version: ")
	}
	return fmt.Sprintf("- Machine: %d × %s, Linux %s, %s%s\n- Pinning: %s\n- Method: %s; %d round(s), servers interleaved within each case, each round starting with the next server; echo and storm run %v each; figures are medians over rounds; run took %v",
		runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version(), apache, pin, mode, rounds, secs, took.Round(time.Second))
}

var groupTitles = map[string]string{
	"echo":          "Echo: messages per second (each connection sends, waits for the echo, repeats)",
	"deflate":       "permessage-deflate echo: messages per second (compressible text, no context takeover)",
	"idle":          "Idle hold: server RSS per idle connection (lower is better)",
	"apache-idle":   "Idle WebSockets in httpd (event MPM, 2 children of 25 threads: 50 workers, AsyncRequestWorkerFactor 250): RSS of httpd and its children per idle connection, against the daemon alone (lower is better). mod_wsgate releases the worker of an idle WebSocket; the busy workers below are counted by mod_status while the connections are held (one of them serves the status request)",
	"apache-parked": "Broadcast to parked WebSockets in httpd (apache-idle's sizing: 50 workers, released while idle): 5,000 subscribers on the chat application, every one idle when a message comes (1.5 s before each, 5 messages): deliveries per second while a message fans out (the pauses not counted), and in the latency table the time from sending a message to every subscriber having it. The daemon alone for comparison",
	"spike":         "Memory after a spike: a flood of connections opened as fast as the server takes them, held 5 s, then all reset; the server's RSS 30 s later as a multiple of its RSS before the flood (lower is better; the bar is 2×)",
	"storm":         "Connect storm: handshakes per second (connect, upgrade, reset)",
	"broadcast":     "Broadcast: deliveries per second (each message relayed to every subscriber, 50 messages one after another)",
	"apache":        "Apache httpd: echo messages per second, mod_wsgate and httpd's proxy tunnel (mod_proxy_http) in front of the daemon",
	"direct":        "Direct mode: echo messages per second through a producer (examples/producers/echo), in the daemon's own process (in-process), behind the framed protocol (mux), and taking each client's socket itself (direct, ouistiti's direct mode). In parentheses each one's rate ÷ in-process's, paired round by round",
	"events":        "WebSocket-over-HTTP: echo messages per second through an HTTP application (examples/wsoverhttp/echo, Go's net/http: every message a POST), against the same echo in the daemon's own process (in-process) and behind the framed protocol (mux). In parentheses each one's rate ÷ in-process's, paired round by round",
	"events-php":    "PHP over WebSocket-over-HTTP: echo messages per second to examples/wsoverhttp/php/echo.php, behind the daemon (PHP's built-in server, 8 workers) and inside httpd as subrequests (mod_wsgate, php-cgi -b behind mod_proxy_fcgi, 8 children). In parentheses mod_wsgate's rate ÷ the daemon's, paired round by round",
	"hold":          "Held clients (backend hold): what holding costs and how long resuming takes, from the Go benchmarks in apps/backend (`go test ./apps/backend -run '^$' -bench 'HeldClientCost|HoldResume1000' -benchtime 5x`), medians over rounds",
	"cluster":       "Cluster: broadcast deliveries per second, 9,000 subscribers on one daemon, and spread over three daemons joined by a NATS server (3,000 each; the sender on the first), every process on the same server core. In parentheses the three nodes' rate ÷ one node's, paired round by round",
	"ops":           "Operations cost: echo messages and handshakes per second, one build with limits, metrics and access log off (ops-off); every limit on and the metrics scraped each second (ops-on); and ops-on with the access log written to a file (ops-log). In parentheses each one's rate ÷ ops-off's, paired round by round",
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
		"over epoll with no WebSocket framing, the physical limit.\n\n")
	b.WriteString(machine + "\n\n")
	b.WriteString("In parentheses: wsgate's advantage over that server, oriented so that above 1.00 means wsgate did " +
		"better (for rates wsgate ÷ server; for memory server ÷ wsgate), taken round by round (the two ran back to back) " +
		"and then the median of the rounds. The last column is the lowest of those ratios against the four peer libraries: " +
		"wsgate against the best peer in that case. Absolute figures are medians of the rounds.\n\n![throughput by scenario and server](benchmarks.png)\n\n")
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
		fmt.Fprintf(&b, "## %s\n\n| case | %s | wsgate vs best peer |\n|---|%s---|\n", groupTitles[g],
			strings.Join(servers, " | "), strings.Repeat("---|", len(servers)))
		var lat strings.Builder
		fmt.Fprintf(&lat, "| latency p50 / p99 / p999 (µs) | %s |\n|---|%s\n", strings.Join(servers, " | "), strings.Repeat("---|", len(servers)))
		for _, c := range cases {
			wsm := cell[[2]string{c, ref}]
			fmt.Fprintf(&b, "| %s |", c)
			fmt.Fprintf(&lat, "| %s |", c)
			worst := 0.0
			for _, s := range servers {
				m := cell[[2]string{c, s}]
				if m == nil {
					b.WriteString(" – |")
					lat.WriteString(" – |")
					continue
				}
				v, p50, p99, p999, ok := m.median()
				switch {
				case !ok:
					b.WriteString(" failed |")
				case s == ref:
					fmt.Fprintf(&b, " **%s** |", format(g, v))
				case wsm == nil:
					fmt.Fprintf(&b, " %s |", format(g, v))
				default:
					a := pairedAdvantage(g, wsm, m)
					fmt.Fprintf(&b, " %s (%.2f) |", format(g, v), shownRatio(g, a))
					if isPeer(s) && a > 0 && (worst == 0 || a < worst) {
						worst = a
					}
				}
				if ok {
					fmt.Fprintf(&lat, " %.0f / %.0f / %.0f |", p50, p99, p999)
				} else {
					lat.WriteString(" – |")
				}
			}
			if worst > 0 {
				fmt.Fprintf(&b, " %.2f |\n", worst)
			} else {
				b.WriteString(" – |\n")
			}
			lat.WriteString("\n")
		}
		b.WriteString("\n")
		if g != "idle" && g != "hold" && g != "spike" && g != "apache-idle" {
			b.WriteString(lat.String() + "\n")
		}
		if g == "ops" || g == "cluster" || g == "direct" {
			b.WriteString(cpuTable(servers, cases, cell, ref))
		}
		if g == "cluster" {
			b.WriteString(rssTable(servers, cases, cell))
		}
		if g == "apache-idle" {
			b.WriteString(workersLine(ms))
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
			n := min(len(m.Results), len(r.Results))
			ratios := make([]load.Result, n)
			for i := range n {
				if r.Results[i].ServerCPU > 0 {
					ratios[i].ServerCPU = m.Results[i].ServerCPU / r.Results[i].ServerCPU
				}
			}
			fmt.Fprintf(&b, " %.1f (%.2f) |", v, medianOf(ratios, func(x load.Result) float64 { return x.ServerCPU }))
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
