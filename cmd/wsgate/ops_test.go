package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// proc is a wsgate process started by a test, with its log.
type proc struct {
	cmd  *exec.Cmd
	logs *testserver.Logs
	done chan struct{} // closed when the process has exited
	err  error
}

func launch(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	// An *os.File, not an io.Writer: a process this one starts (a binary
	// upgrade) inherits it, and Wait must not wait for that one too.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	p := &proc{cmd: cmd, logs: &testserver.Logs{}, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			p.logs.Write([]byte(sc.Text() + "\n"))
			if os.Getenv("WSGATE_TEST_LOG") != "" {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// await waits until the log has n lines matching re, and returns the
// first submatch of the last one.
func (p *proc) await(t *testing.T, re string, n int) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var last string
	if !testserver.WaitFor(30*time.Second, func() bool {
		k := 0
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if m := rx.FindStringSubmatch(line); m != nil {
				k++
				if len(m) > 1 {
					last = m[1]
				} else {
					last = m[0]
				}
			}
		}
		return k >= n
	}) {
		t.Fatalf("no %d lines matching %q in the log:\n%s", n, re, p.logs)
	}
	return last
}

// echoer holds a WebSocket and echoes through it until stopped, counting
// round trips and remembering the first failure.
type echoer struct {
	c      *ws.Conn
	trips  atomic.Int64
	err    atomic.Pointer[error]
	closed atomic.Uint32 // the close code the server sent, if it did
	pause  time.Duration // between round trips
}

func (e *echoer) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		msg := fmt.Sprintf("m%d", i)
		e.c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := e.c.Write(ws.Text(msg)); err != nil {
			e.err.Store(&err)
			return
		}
		f, err := e.c.ReadFrame()
		if err == nil && f.Op == ws.OpClose {
			e.closed.Store(uint32(f.Code()))
			return
		}
		if err == nil && (f.Op != ws.OpText || string(f.Payload) != msg) {
			err = fmt.Errorf("got %v, want %q", f, msg)
		}
		if err != nil {
			e.err.Store(&err)
			return
		}
		e.trips.Add(1)
		time.Sleep(max(e.pause, 20*time.Millisecond))
	}
}

// TestReloadUnderLoad: 1,000 clients echo while the configuration is
// reloaded 20 times (SIGHUP), each time changing a route they are on,
// adding and removing a route and a listener; one of the reloads is a bad
// configuration. No client sees a close, a refusal or a lost message;
// new clients are accepted throughout.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "wsgate.yaml")
	sock := filepath.Join(dir, "second.sock")
	variant := func(i int) string {
		extra, listen := "", ""
		if i%2 == 1 {
			extra = "\n  - {path: /notice, notice: {text: reloaded}}"
			listen = fmt.Sprintf("\n  - {unix: %s}", sock)
		}
		// /changing's policy changes on every reload, so it is replaced
		// every time: its open clients must keep the route they have.
		return fmt.Sprintf(`listen:
  - address: 127.0.0.1:0%s
admin: {listen: 127.0.0.1:0}
server: {max_connections_per_ip: 0}
routes:
  - {path: /stable, app: echo}
  - {path: /changing, app: echo, max_message_size: %dKiB}%s
`, listen, 64+i, extra)
	}
	os.WriteFile(cfgPath, []byte(variant(0)), 0o644)
	p := launch(t, exec.Command(binary, "-config", cfgPath))
	addr := p.await(t, `msg=listening address=(127\.0\.0\.1:\d+)`, 1)

	const clients = 1000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	echoers := make([]*echoer, clients)
	for i := range echoers {
		path := "/stable"
		if i%2 == 1 {
			path = "/changing"
		}
		c, err := ws.Upgrade(addr, path)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
		echoers[i] = &echoer{c: c, pause: 250 * time.Millisecond}
		wg.Add(1)
		go echoers[i].run(stop, &wg)
	}
	// New clients throughout: each connects, echoes once and leaves.
	var newOK, newFailed atomic.Int64
	var newErr atomic.Pointer[error]
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, path := range []string{"/stable", "/changing"} {
				c, err := ws.Upgrade(addr, path)
				if err == nil {
					c.Write(ws.Text("hi"))
					var f ws.Received
					f, err = c.ReadFrame()
					if err == nil && string(f.Payload) != "hi" {
						err = fmt.Errorf("echo %q", f.Payload)
					}
					c.Write(ws.Close(1000, ""))
					c.Close()
				}
				if err != nil {
					newFailed.Add(1)
					newErr.Store(&err)
				} else {
					newOK.Add(1)
				}
			}
		}
	}()

	for i := 1; i <= 20; i++ {
		if i == 10 {
			os.WriteFile(cfgPath, []byte("routes:\n  - {path: /stable, app: nonesuch}\n"), 0o644)
			p.cmd.Process.Signal(syscall.SIGHUP)
			p.await(t, "reload failed", 1)
		}
		os.WriteFile(cfgPath, []byte(variant(i)), 0o644)
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.await(t, "configuration reloaded", i)
		// Traffic crosses the new configuration: new clients on both
		// routes are served by it.
		before := newOK.Load() + newFailed.Load()
		if !testserver.WaitFor(time.Minute, func() bool { return newOK.Load()+newFailed.Load() >= before+4 }) {
			t.Fatal("no new client was served after a reload")
		}
	}
	// Every held client has made a round trip across the reloads.
	testserver.WaitFor(time.Minute, func() bool {
		for _, e := range echoers {
			if e.trips.Load() == 0 && e.err.Load() == nil {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	for i, e := range echoers {
		if err := e.err.Load(); err != nil {
			t.Errorf("client %d failed after %d round trips: %v", i, e.trips.Load(), *err)
		} else if e.trips.Load() == 0 {
			t.Errorf("client %d made no round trip", i)
		}
	}
	if n := newFailed.Load(); n > 0 {
		t.Errorf("%d new clients failed during reloads (%d succeeded): %v", n, newOK.Load(), *newErr.Load())
	}
	if p.logs.Count("websocket refused") > 0 {
		t.Errorf("refusals in the log:\n%s", p.logs)
	}
	// The counters agree.
	admin := p.await(t, `msg="admin listening" address=(\S+)`, 1)
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wsgate_config_reloads_total{result="ok"} 20`, `wsgate_config_reloads_total{result="failed"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	t.Logf("%d clients, %d new clients during 20 reloads", clients, newOK.Load())
}

// TestUpgrade: SIGUSR2 hands the listening sockets to a new process with
// nothing refused. In "keep" mode the old process serves its clients
// until they leave, then exits 0; in "close" mode it closes them with 1001
// after the drain timeout.
func TestUpgrade(t *testing.T) {
	for _, mode := range []string{"keep", "close"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			// A copy of the binary, as a package upgrade would replace it.
			exe := filepath.Join(dir, "wsgate")
			b, _ := os.ReadFile(binary)
			os.WriteFile(exe, b, 0o755)
			cfg := writeFile(t, "wsgate.yaml", fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}, {unix: %s/ws.sock}]
admin: {listen: 127.0.0.1:0}
server: {upgrade: {drain: %s, drain_timeout: 1s}}
routes: [{path: /echo, app: echo}]
`, dir, mode))
			old := launch(t, exec.Command(exe, "-config", cfg))
			addr := old.await(t, `msg=listening address=(127\.0\.0\.1:\d+)`, 1)
			var held []*echoer
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 20 {
				c, err := ws.Upgrade(addr, "/echo")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				e := &echoer{c: c}
				held = append(held, e)
				wg.Add(1)
				go e.run(stop, &wg)
			}
			// Clients keep arriving during the upgrade; none may be refused.
			var arrivals, refused atomic.Int64
			arriving := make(chan struct{})
			go func() {
				defer close(arriving)
				for {
					select {
					case <-stop:
						return
					default:
					}
					for _, target := range []string{addr, dir + "/ws.sock"} {
						c, err := ws.Upgrade(target, "/echo")
						if err != nil {
							refused.Add(1)
							continue
						}
						c.Write(ws.Close(1000, ""))
						c.Close()
						arrivals.Add(1)
					}
				}
			}()
			// Some arrive before the upgrade starts.
			if !testserver.WaitFor(time.Minute, func() bool { return arrivals.Load() >= 10 }) {
				t.Fatalf("no client arrived before the upgrade (%d refused)", refused.Load())
			}
			// A scraper with a kept-alive connection to the admin listener,
			// and a real Prometheus, both from before the upgrade.
			admin := old.await(t, `msg="admin listening" address=(\S+)`, 1)
			scraper := &http.Client{Timeout: 10 * time.Second}
			scrape := func() string {
				resp, err := scraper.Get("http://" + admin + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			if testserver.Sample(scrape(), "wsgate_connections_open{route=\"/echo\"}") < 20 {
				t.Fatal("the held clients are not counted before the upgrade")
			}
			var prom *testserver.Prometheus
			if mode == "keep" {
				prom = testserver.StartPrometheus(t, admin)
			}
			old.cmd.Process.Signal(syscall.SIGUSR2)
			newPID := old.await(t, `new_pid=(\d+)`, 1)
			// Both processes write to the same log now: each line says
			// which one wrote it.
			old.await(t, `msg=listening .*inherited=true pid=`+newPID+`$`, 1)
			old.await(t, `msg="upgrade: the new process serves.* pid=`+strconv.Itoa(old.cmd.Process.Pid)+`$`, 1)
			// And some after the new process is up: it is in the log
			// before the old one stops accepting.
			during := arrivals.Load()
			keepArriving := func() {
				if !testserver.WaitFor(time.Minute, func() bool { return arrivals.Load() >= during+20 }) {
					t.Errorf("clients stopped arriving during the upgrade: %d after it began (%d refused)", arrivals.Load()-during, refused.Load())
				}
			}
			// A handle on the new process now (a pidfd on Linux, so it
			// cannot name another process later): whatever fails below,
			// it does not outlive the test.
			var pid int
			fmt.Sscan(newPID, &pid)
			newProc, err := os.FindProcess(pid)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { newProc.Kill(); newProc.Wait() })
			if mode == "keep" {
				// Every held client goes on echoing on the old process
				// after the new one is up.
				marks := make([]int64, len(held))
				for i, e := range held {
					marks[i] = e.trips.Load()
				}
				testserver.WaitFor(time.Minute, func() bool {
					for i, e := range held {
						if e.err.Load() == nil && e.closed.Load() == 0 && e.trips.Load() < marks[i]+3 {
							return false
						}
					}
					return true
				})
				for i, e := range held {
					if err := e.err.Load(); err != nil {
						t.Fatalf("held client %d failed in keep mode: %v", i, *err)
					}
				}
				// The scraper's next scrape, on the same client, reaches the
				// new process (the old one closed its kept-alive
				// connection), which counts the old one's clients too.
				if !testserver.WaitFor(30*time.Second, func() bool {
					m := scrape()
					return testserver.Sample(m, "wsgate_draining") == 0 &&
						testserver.Sample(m, "wsgate_predecessor_connections_open{route=\"/echo\"}") == 20
				}) {
					t.Errorf("the scraper does not see the new process with the old one's 20 clients:\n%s", testserver.Grep(scrape(), "open"))
				}
				q := `sum(wsgate_connections_open{route="/echo"}) + sum(wsgate_predecessor_connections_open{route="/echo"})`
				if !testserver.WaitFor(30*time.Second, func() bool { v, ok := prom.Query(t, q); return ok && v >= 20 }) {
					v, ok := prom.Query(t, q)
					t.Errorf("Prometheus after the upgrade: %s = %v %v, want the 20 held clients", q, v, ok)
				}
				keepArriving()
				close(stop)
				wg.Wait()
				for _, e := range held {
					e.c.Write(ws.Close(1000, ""))
					e.c.Close()
				}
			} else {
				// Each held client gets 1001 after the drain timeout, and
				// its echoes go on until then.
				keepArriving()
				wg.Wait()
				close(stop)
				for i, e := range held {
					if err := e.err.Load(); err != nil {
						t.Fatalf("held client %d: %v", i, *err)
					}
					if code := e.closed.Load(); code != 1001 {
						t.Fatalf("held client %d closed with %d, want 1001", i, code)
					}
				}
			}
			select {
			case <-old.done:
			case <-time.After(30 * time.Second):
				t.Fatal("the old process did not exit")
			}
			<-arriving
			if old.err != nil {
				t.Errorf("the old process exited with %v", old.err)
			}
			if n := refused.Load(); n > 0 {
				t.Errorf("%d clients refused during the upgrade (%d served)", n, arrivals.Load())
			}
			// The new process serves, on the same sockets.
			c, err := ws.Upgrade(addr, "/echo")
			if err != nil {
				t.Fatalf("after the upgrade: %v", err)
			}
			c.Close()
			newProc.Signal(syscall.SIGTERM)
			t.Logf("%d clients arrived during the upgrade", arrivals.Load())
		})
	}
}

// TestSystemdIntegration: sockets from systemd's socket activation are
// served, and the daemon tells systemd READY, RELOADING and STOPPING.
func TestSystemdIntegration(t *testing.T) {
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := nconn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			states <- string(buf[:n])
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ln.(*net.TCPListener).File()
	ln.Close()
	cfg := writeFile(t, "wsgate.yaml", fmt.Sprintf(`
listen: [{address: %s}]
admin: {listen: off}
routes: [{path: /echo, app: echo}]
`, ln.Addr()))
	// LISTEN_PID must be the daemon's own pid: the shell's, which exec keeps.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -config "$1"`, binary, cfg)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	p := launch(t, cmd)
	f.Close()
	p.await(t, `msg=listening .*inherited=true`, 1)
	expect := func(prefix string) {
		t.Helper()
		select {
		case s := <-states:
			if !strings.HasPrefix(s, prefix) {
				t.Fatalf("systemd was told %q, want %s…", s, prefix)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("systemd was not told %s", prefix)
		}
	}
	expect("READY=1")
	if c, err := ws.Upgrade(ln.Addr().String(), "/echo"); err != nil {
		t.Fatalf("the inherited socket is not served: %v", err)
	} else {
		c.Close()
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	p.cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	<-p.done
}

// TestOutOfDescriptors: with a descriptor limit too small for its
// clients, wsgate refuses the ones it cannot hold with a quick 503 rather
// than leaving them in the kernel's backlog, says so at warn, and counts
// every one it refused.
func TestOutOfDescriptors(t *testing.T) {
	cfg := writeFile(t, "wsgate.yaml", `
listen: [{address: 127.0.0.1:0}]
admin: {listen: 127.0.0.1:0}
server: {max_connections: 0, max_connections_per_ip: 0}
routes: [{path: /echo, app: echo}]
`)
	p := launch(t, exec.Command("sh", "-c", `ulimit -n 48 && exec "$0" -config "$1"`, binary, cfg))
	addr := p.await(t, `msg=listening address=(127\.0\.0\.1:\d+)`, 1)
	var held []*ws.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := 0
	for range 80 {
		c, err := ws.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := c.Handshake(ws.Request("/echo"))
		switch {
		case err == nil && resp.StatusCode == 101:
			held = append(held, c)
		case err == nil && resp.StatusCode == 503:
			refused++
			c.Close()
		default:
			t.Fatalf("a client got neither 101 nor a quick 503: %v %v", resp, err)
		}
	}
	if refused == 0 {
		t.Fatalf("all 80 accepted with 48 descriptors?")
	}
	p.await(t, `level=WARN msg="cannot accept connections: out of file descriptors`, 1)
	// Free the descriptors, so that the admin listener can accept.
	for _, c := range held {
		c.Close()
	}
	admin := p.await(t, `msg="admin listening" address=(\S+)`, 1)
	want := fmt.Sprintf(`wsgate_connections_refused_total{cause="out_of_descriptors"} %d`, refused)
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			continue
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), want) {
			break
		}
	}
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "refused|accept_errors"))
	}
	t.Logf("%d held, %d refused", len(held), refused)
}

// grepLines is the lines of s that match the regular expression.
func grepLines(s, expr string) string {
	re := regexp.MustCompile(expr)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
