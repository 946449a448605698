// Command idle measures what an idle WebSocket connection costs a server
// process: it starts the server, opens N connections that then stay silent,
// and reports the growth of the server's resident set size per connection.
//
//	go build -o /tmp/wsgate ./cmd/wsgate
//	cd bench && go run ./cmd/idle -server /tmp/wsgate -n 10000
//
// With -addr and -pidfile it measures a server that is already running
// instead, such as httpd with mod_wsgate: the process in the pid file and
// its children.
//
// Connections come from several loopback source addresses (127.0.0.2 and
// up) so that no single address runs out of ports.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	server := flag.String("server", "", "path of the wsgate binary")
	n := flag.Int("n", 10000, "connections to hold")
	path := flag.String("path", "/echo", "route to connect to")
	settle := flag.Duration("settle", 5*time.Second, "wait after the last connection before measuring")
	cfgFile := flag.String("config", "", "wsgate configuration to run (default: an echo route); it must listen on 127.0.0.1:0 first")
	addr := flag.String("addr", "", "a running server's address (host:port on loopback), instead of -server")
	pidfile := flag.String("pidfile", "", "with -addr: the server's pid file; its process and children are measured")
	flag.Parse()
	var measure func() int64
	switch {
	case *addr != "" && *pidfile != "":
		*server = *addr
		measure = func() int64 { return treeRSS(*pidfile) }
	case *server != "":
		dir, _ := os.MkdirTemp("", "idle")
		defer os.RemoveAll(dir)
		cfg := filepath.Join(dir, "wsgate.yaml")
		cmd := exec.Command(*server, "-config", cfg)
		os.WriteFile(cfg, []byte("listen:\n  - address: 127.0.0.1:0\nroutes:\n  - path: /echo\n    app: echo\n"), 0o600)
		if *cfgFile != "" {
			cmd = exec.Command(*server, "-config", *cfgFile)
		}
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer cmd.Process.Kill()
		*addr = waitAddr(stderr)
		go io.Copy(io.Discard, stderr)
		time.Sleep(500 * time.Millisecond)
		measure = func() int64 { return rss(cmd.Process.Pid) }
	default:
		fmt.Fprintln(os.Stderr, "idle: -server, or -addr and -pidfile, is required")
		os.Exit(2)
	}
	before := measure()

	var opened atomic.Int64
	conns := make([]net.Conn, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(*addr, i, *path)
			if err != nil {
				fmt.Fprintf(os.Stderr, "connection %d: %v\n", i, err)
				return
			}
			conns[i] = c
			opened.Add(1)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(*settle)
	after := measure()
	got := opened.Load()
	fmt.Printf("server           %s\n", *server)
	fmt.Printf("connections      %d (opened in %v)\n", got, took.Round(time.Millisecond))
	fmt.Printf("rss before       %d KiB\n", before)
	fmt.Printf("rss after        %d KiB\n", after)
	if got > 0 {
		fmt.Printf("rss per conn     %.2f KiB\n", float64(after-before)/float64(got))
	}
	for _, c := range conns {
		if c != nil {
			closeNow(c)
		}
	}
}

// closeNow closes with a reset (SO_LINGER 0) so that the client side keeps
// no TIME_WAIT socket: thousands of those would slow the next run's
// connect() calls down to a crawl.
func closeNow(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func waitAddr(r io.Reader) string {
	sc := bufio.NewScanner(r)
	re := regexp.MustCompile(`msg=listening address=(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	fmt.Fprintln(os.Stderr, "idle: server did not report its address")
	os.Exit(1)
	return ""
}

// dial opens one WebSocket from source address 127.0.0.(2 + i/20000).
func dial(addr string, i int, path string) (net.Conn, error) {
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/20000))}
	d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 101 ") {
		c.Close()
		return nil, fmt.Errorf("handshake: %q %v", line, err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if l == "\r\n" {
			return c, nil
		}
	}
}

// rss returns a process's resident set size in KiB.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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

// treeRSS sums the resident set sizes of the process in pidfile and of its
// children.
func treeRSS(pidfile string) int64 {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
	parent := strings.TrimSpace(string(b))
	pid, _ := strconv.Atoi(parent)
	total := rss(pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// The fields after the command name: state, then the parent's pid.
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(f) > 1 && f[1] == parent {
			total += rss(child)
		}
	}
	return total
}
