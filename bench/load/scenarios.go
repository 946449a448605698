package load

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"
)

// Result is one scenario run against one server. Rate is messages per
// second for echo, handshakes per second for storm and deliveries per
// second for broadcast; latencies are in microseconds.
type Result struct {
	Scenario string  `json:"scenario"`
	Conns    int     `json:"conns"`
	Size     int     `json:"size"`
	Rate     float64 `json:"rate"`
	Count    uint64  `json:"count"`
	Seconds  float64 `json:"seconds"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Errors   int     `json:"errors"`
	// Idle hold only.
	RSSBefore  int64   `json:"rss_before_kib,omitempty"`
	RSSAfter   int64   `json:"rss_after_kib,omitempty"`
	PerConnKiB float64 `json:"per_conn_kib,omitempty"`
	// Spike only: the RSS at the flood's height, every second after the
	// close (RSSAfter is the last of them), and how many seconds after
	// the close RSS first came within twice RSSBefore (-1: never).
	RSSPeak      int64   `json:"rss_peak_kib,omitempty"`
	RSSSeries    []int64 `json:"rss_series_kib,omitempty"`
	BackWithin2x int     `json:"back_within_2x_s,omitempty"`
	// Idle against httpd with -status: its scoreboard's busy and idle
	// workers while the connections were held (mod_status).
	BusyWorkers int `json:"busy_workers,omitempty"`
	IdleWorkers int `json:"idle_workers,omitempty"`
	// ServerCPU is the CPU time (user and system) the server process
	// spent per operation (message or handshake) during the run, in
	// microseconds, from /proc. The harness fills it in; on a machine
	// whose neighbours steal cycles it varies much less than the rate.
	ServerCPU float64 `json:"server_cpu_us,omitempty"`
	// Survive only: connections the server closed (or lost) while they
	// idled answering every ping, the pings answered, and when the first
	// was lost (seconds after the hold began; -1: none).
	Lost      int     `json:"lost"`
	Pongs     uint64  `json:"pongs,omitempty"`
	FirstLost float64 `json:"first_lost_s,omitempty"`
	// ProcessRSS is, for a server of several processes (a cluster's
	// nodes and broker), each one's RSS in KiB at the end of the run. The
	// harness fills it in.
	ProcessRSS map[string]int64 `json:"process_rss_kib,omitempty"`
	// PSSAfter is, for the idle scenario, the server's proportional set
	// size with the connections held (KiB, /proc/PID/smaps_rollup): its
	// RSS with shared pages divided among the processes that share them.
	PSSAfter int64 `json:"pss_after_kib,omitempty"`
	// Round is the harness's round the result belongs to (1, 2, ...), by
	// which results of different servers are paired. The harness fills it
	// in.
	Round int `json:"round,omitempty"`
	// ClientCPU is the share of one core the load generator used while it
	// measured (its user and system time over the wall time): near 1 the
	// row measures the client. The harness fills it in.
	ClientCPU float64 `json:"client_cpu,omitempty"`
}

// PSS is a process's proportional set size in KiB (with its children's
// when children is set), from smaps_rollup; 0 when the kernel has none.
func PSS(pid int, children bool) int64 { return withChildren(pid, children, pssOf) }

func pssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func (r *Result) latencies(h *Hist) {
	us := func(q float64) float64 { return float64(h.Quantile(q)) / 1e3 }
	r.P50, r.P99, r.P999 = us(0.50), us(0.99), us(0.999)
}

// EchoOptions describes an echo run: Conns connections each send a
// message of Size bytes, wait for the echo, and repeat, until Duration has
// passed or Messages echoes (if not zero) have come back in all.
type EchoOptions struct {
	URL      string
	Conns    int
	Size     int
	Duration time.Duration
	Messages int64
	Text     bool
	Deflate  bool
	// Raw skips the handshake: the server is the TCP echo baseline.
	Raw bool
}

// Echo runs the echo scenario.
func Echo(o EchoOptions) (Result, error) {
	res := Result{Scenario: "echo", Conns: o.Conns, Size: o.Size}
	if o.Deflate {
		res.Scenario = "deflate"
	}
	payload := Payload(o.Size)
	op := byte(0x2)
	if o.Text {
		op = 0x1
	}
	var frame []byte
	ext := ""
	if o.Deflate {
		ext = Deflate
		frame = Frame(op, compress(payload), true)
	} else {
		frame = Frame(op, payload, false)
	}
	cs := make([]*Conn, o.Conns)
	defer closeAll(cs)
	if err := dialAll(cs, o.URL, ext, min(64<<10, o.Size+4096), o.Raw); err != nil {
		return res, err
	}
	// One checked exchange per connection before timing: the echo must
	// come back intact (and compressed, in the deflate scenario).
	for i, c := range cs {
		if o.Deflate && !strings.Contains(c.Extensions, "permessage-deflate") {
			return res, fmt.Errorf("connection %d: no permessage-deflate in the answer (%q)", i, c.Extensions)
		}
		if _, err := c.NC.Write(frame); err != nil {
			return res, err
		}
		c.NC.SetReadDeadline(time.Now().Add(10 * time.Second))
		b0, p, err := c.ReadPayload()
		c.NC.SetReadDeadline(time.Time{})
		if err != nil {
			return res, fmt.Errorf("connection %d: first echo: %w", i, err)
		}
		if b0&0x40 != 0 {
			if p, err = inflate(p); err != nil {
				return res, fmt.Errorf("connection %d: first echo: %w", i, err)
			}
		}
		if !bytes.Equal(p, payload) && !bytes.Equal(p, frame) {
			return res, fmt.Errorf("connection %d: the echo differs from the message (%d bytes back)", i, len(p))
		}
	}
	loop := echoLoop
	if strings.HasPrefix(o.URL, "wss:") {
		loop = echoConns
	}
	n, all, elapsed, err := loop(cs, frame, o.Duration, o.Messages)
	if err != nil {
		return res, err
	}
	res.Count, res.Seconds = uint64(n), elapsed.Seconds()
	res.Rate = float64(n) / elapsed.Seconds()
	res.latencies(all)
	return res, nil
}

// closeAll resets every connection dialAll opened.
func closeAll(cs []*Conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// dialAll opens len(cs) connections, 64 handshakes at a time.
func dialAll(cs []*Conn, target, ext string, readBuf int, raw bool) error {
	par := 64
	if strings.HasPrefix(target, "http") {
		// httpd's event MPM closes every idle keep-alive connection
		// whenever all its workers were busy: dial plain HTTP clients
		// fewer at a time than it has workers.
		par = 8
	}
	return forEach(len(cs), par, func(i int) error {
		c, err := dial(target, ext, readBuf, raw)
		if err == nil {
			cs[i] = c
		}
		return err
	})
}

// forEach runs fn(0..n-1), par at a time, and returns the first error,
// naming its index.
func forEach(n, par int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, par)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("connection %d: %w", i, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func compress(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	out := b.Bytes()
	return bytes.TrimSuffix(out, []byte{0, 0, 0xff, 0xff})
}

func inflate(p []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	var out bytes.Buffer
	_, err := io.Copy(&out, r)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	return out.Bytes(), err
}

// Idle opens n connections that then stay silent, waits settle, and
// reports the growth of the resident set measured by rss (KiB).
func Idle(target string, n int, settle time.Duration, rss func() int64) (Result, error) {
	return IdleStatus(target, n, settle, rss, "")
}

// IdleStatus is Idle that also reads httpd's mod_status page (status, the
// URL of server-status?auto) while the connections are held: how many
// workers they keep busy.
func IdleStatus(target string, n int, settle time.Duration, rss func() int64, status string) (Result, error) {
	return IdleWith(target, n, settle, rss, IdleOptions{Status: status})
}

// IdleOptions are IdleWith's.
type IdleOptions struct {
	// Status is httpd's server-status?auto URL (see IdleStatus).
	Status string
	// PSS, if set, reads the server's proportional set size (KiB) with
	// the connections held, for Result.PSSAfter.
	PSS func() int64
	// Pings: the clients answer every ping while they idle, as browsers
	// do, for a server that pings (its default settings); every one must
	// still be open, and echo, at the end.
	Pings bool
	// Pending, over wss, leaves that many bytes of a TLS record sent on
	// every connection, the rest held back until the echo that ends the
	// measurement: what a server keeps for clients that stopped part way
	// through a record (1 byte, the 5-byte header, ...).
	Pending int
}

// IdleWith is Idle with options.
func IdleWith(target string, n int, settle time.Duration, rss func() int64, o IdleOptions) (Result, error) {
	if o.Pings {
		r, err := Survive([]string{target}, n, settle, rss)
		if err != nil {
			return r, err
		}
		if r.Lost > 0 || r.Count != uint64(n) {
			return r, fmt.Errorf("%d of %d connections were lost while idle answering pings (the first after %.1f s), %d echoed", r.Lost, n, r.FirstLost, r.Count)
		}
		r.Scenario = "idle"
		r.PerConnKiB = float64(r.RSSAfter-r.RSSBefore) / float64(n)
		if o.PSS != nil {
			r.PSSAfter = o.PSS()
		}
		return r, nil
	}
	status := o.Status
	res := Result{Scenario: "idle", Conns: n}
	before := rss()
	cs := make([]*Conn, n)
	defer closeAll(cs)
	start := time.Now()
	if err := dialAll(cs, target, "", 256, false); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	payload := []byte("still there?")
	if o.Pending > 0 {
		frame := Frame(0x1, payload, false)
		for i, c := range cs {
			if err := c.Begin(frame, o.Pending); err != nil {
				return res, fmt.Errorf("connection %d: %w", i, err)
			}
		}
	}
	time.Sleep(settle)
	after := rss()
	if o.PSS != nil {
		res.PSSAfter = o.PSS()
	}
	if status != "" {
		busy, idle, err := scoreboard(status)
		if err != nil {
			return res, err
		}
		res.BusyWorkers, res.IdleWorkers = busy, idle
	}
	// Every connection must still be open: a server that dropped idle
	// connections would look cheap.
	for i, c := range cs {
		c.NC.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := c.NC.Read(b[:]); err == nil || !isTimeout(err) {
			return res, fmt.Errorf("connection %d did not stay open: %v", i, err)
		}
	}
	// And every idle WebSocket still answers: an echo on each, many at a
	// time (a server that held connections it could not serve again would
	// look cheap too). A record begun is finished first: it is the echo.
	if !strings.HasPrefix(target, "http") {
		if err := echoEach(cs, o.Pending > 0); err != nil {
			return res, err
		}
	}
	res.RSSBefore, res.RSSAfter = before, after
	res.Count = uint64(n)
	res.PerConnKiB = float64(after-before) / float64(n)
	return res, nil
}

// echoEach sends a small message on every connection and checks its echo,
// 64 connections at a time.
func echoEach(cs []*Conn, begun bool) error {
	payload := []byte("still there?")
	frame := Frame(0x1, payload, false)
	return forEach(len(cs), 64, func(i int) error {
		c := cs[i]
		c.NC.SetDeadline(time.Now().Add(30 * time.Second))
		defer c.NC.SetDeadline(time.Time{})
		var err error
		if begun {
			err = c.Finish()
		} else {
			_, err = c.NC.Write(frame)
		}
		if err != nil {
			return fmt.Errorf("after idling: %w", err)
		}
		_, p, err := c.ReadPayload()
		if err == nil && !bytes.Equal(p, payload) {
			err = fmt.Errorf("echo %q", p)
		}
		if err != nil {
			return fmt.Errorf("after idling: %w", err)
		}
		return nil
	})
}

// Spike opens n connections as fast as the server takes them, holds them
// for settle, closes them all (resets, as clients that vanish), then reads
// the server's RSS every second for watch: whether the memory the flood
// took goes back. rss reads it.
func Spike(target string, n int, settle, watch time.Duration, rss func() int64) (Result, error) {
	res := Result{Scenario: "spike", Conns: n, BackWithin2x: -1}
	res.RSSBefore = rss()
	cs := make([]*Conn, n)
	start := time.Now()
	err := dialAll(cs, target, "", 256, false)
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		closeAll(cs)
		return res, err
	}
	time.Sleep(settle)
	res.RSSPeak = rss()
	closeAll(cs)
	res.Count = uint64(n)
	for i := 1; time.Duration(i)*time.Second <= watch; i++ {
		time.Sleep(time.Second)
		v := rss()
		res.RSSSeries = append(res.RSSSeries, v)
		if res.BackWithin2x < 0 && v <= 2*res.RSSBefore {
			res.BackWithin2x = i
		}
	}
	if k := len(res.RSSSeries); k > 0 {
		res.RSSAfter = res.RSSSeries[k-1]
	}
	return res, nil
}

// scoreboard reads BusyWorkers and IdleWorkers from mod_status's
// machine-readable page.
func scoreboard(url string) (busy, idle int, err error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, fmt.Errorf("server-status: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		switch k {
		case "BusyWorkers":
			busy, found = n, found+1
		case "IdleWorkers":
			idle, found = n, found+1
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("server-status: no BusyWorkers/IdleWorkers in %q", b)
	}
	return busy, idle, nil
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// Storm runs conc clients that each connect, complete the handshake and
// reset the connection, over and over, for d: handshakes per second.
func Storm(target string, conc int, d time.Duration) (Result, error) {
	res := Result{Scenario: "storm", Conns: conc}
	var total, errs atomic.Int64
	var stop atomic.Bool
	hists := make([]*Hist, conc)
	var wg sync.WaitGroup
	start := time.Now()
	var firstErr atomic.Value
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := new(Hist)
			hists[i] = h
			for !stop.Load() {
				t0 := time.Now()
				c, err := Dial(target, "", 256)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				h.Record(time.Since(t0))
				c.Close()
				total.Add(1)
			}
		}()
	}
	// It runs for d, and on past it (for up to a minute) until a handshake
	// has completed: on a busy machine a short storm (the smoke test's)
	// can end before the first one does, which says nothing of the server.
	time.Sleep(d)
	for deadline := time.Now().Add(time.Minute); total.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	elapsed := time.Since(start)
	n := total.Load()
	wg.Wait()
	all := new(Hist)
	for _, h := range hists {
		all.Merge(h)
	}
	res.Count, res.Seconds, res.Errors = uint64(n), elapsed.Seconds(), int(errs.Load())
	res.Rate = float64(n) / elapsed.Seconds()
	res.latencies(all)
	if n == 0 {
		err, _ := firstErr.Load().(error)
		return res, fmt.Errorf("no handshake completed: %v", err)
	}
	return res, nil
}

// Broadcast opens n subscribers to a route that relays every text message
// to all of its connections, then has one of them send msgs messages of
// size bytes, each after the previous one reached all n. Rate is
// deliveries per second; the latencies are those of whole fan-outs.
//
// With several targets (the nodes of a cluster, each serving the same
// route) the subscribers are spread evenly over them, subscriber i on
// targets[i%len(targets)], and the sender is on the first: a message
// reaches the other nodes' subscribers through the cluster's bus.
//
// Subscribers are read through one epoll loop rather than a goroutine
// each, so that the client keeps up with 10,000 deliveries per message on
// one core and the server is what is measured.
func Broadcast(targets []string, n, msgs, size int, timeout, gap time.Duration) (Result, error) {
	res := Result{Scenario: "broadcast", Conns: n, Size: size}
	if len(targets) == 0 {
		return res, fmt.Errorf("broadcast: no target")
	}
	cs := make([]*Conn, n)
	defer closeAll(cs)
	// dialAll fills a slice; the subscribers of node k are every
	// len(targets)-th connection, gathered here and put back in place.
	for k, target := range targets {
		var mine []*Conn
		for i := k; i < n; i += len(targets) {
			mine = append(mine, nil)
		}
		err := dialAll(mine, target, "", 256, false)
		for j, c := range mine {
			cs[k+j*len(targets)] = c
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", target, err)
		}
	}
	// Every delivery is the same unmasked text frame.
	frameLen := int64(2 + size)
	if size > 125 {
		frameLen += 2
	}
	if size > 0xFFFF {
		frameLen += 6
	}
	fanout, err := newFanoutReader(cs)
	if err != nil {
		return res, err
	}
	defer fanout.close()
	frame := Frame(0x1, Payload(size), false)
	h := new(Hist)
	send := func(i int) error {
		want := int64(n) * int64(i+1) * frameLen
		// A gap lets every subscriber go idle (park) before the message.
		time.Sleep(gap)
		t0 := time.Now()
		if _, err := cs[0].NC.Write(frame); err != nil {
			return err
		}
		if err := fanout.waitBytes(want, timeout); err != nil {
			return fmt.Errorf("message %d: %v", i, err)
		}
		h.Record(time.Since(t0))
		return nil
	}
	// The first message is a warm-up, not timed.
	if err := send(0); err != nil {
		return res, err
	}
	h = new(Hist)
	start := time.Now()
	for i := 1; i <= msgs; i++ {
		if err := send(i); err != nil {
			return res, err
		}
	}
	// The pauses are not the server's time.
	elapsed := time.Since(start) - time.Duration(msgs)*gap
	// Each subscriber must have received exactly every message.
	for i, got := range fanout.perConn {
		if got != int64(msgs+1)*frameLen {
			return res, fmt.Errorf("subscriber %d received %d bytes, want %d (%d messages)", i, got, int64(msgs+1)*frameLen, msgs+1)
		}
	}
	res.Count = uint64(n) * uint64(msgs)
	res.Seconds = elapsed.Seconds()
	res.Rate = float64(res.Count) / elapsed.Seconds()
	res.latencies(h)
	return res, nil
}

// RSS returns a process's resident set size in KiB, and with children
// also that of its child processes (httpd's children, say).
func RSS(pid int, children bool) int64 { return withChildren(pid, children, rssOf) }

// withChildren sums of over pid and, with children, its child processes.
func withChildren(pid int, children bool, of func(int) int64) int64 {
	total := of(pid)
	if !children {
		return total
	}
	entries, _ := os.ReadDir("/proc")
	parent := strconv.Itoa(pid)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// After the command name: state, then the parent's pid.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) > 1 && f[1] == parent {
			total += of(child)
		}
	}
	return total
}

// CPUTime is the user and system time a process has used so far, read
// from /proc/PID/stat (utime and stime, in clock ticks of 1/100 s on
// Linux).
func CPUTime(pid int) time.Duration {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// After the command name: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}
