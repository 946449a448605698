// Command attack runs the single-source attacks of the denial-of-service
// review against a wsgate daemon, each with a legitimate client on
// another loopback address alongside, and prints a table: the attacker's
// load, the daemon's RSS at its peak and after, and the legitimate
// client's success rate and handshake-plus-echo latency (p50, max).
//
//	cd bench && go run ./cmd/attack [-wsgate PATH] [-only pending,keepalive,...]
//
// Every connection is on loopback: the attacker dials from 127.0.0.2,
// the legitimate client from 127.0.0.3. Each attack is bounded in count
// and time.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/load"
	"github.com/wsgate/wsgate/bench/nginx"
)

var daemonLog string

// adminToken is the bearer token of the daemon's admin listener.
const adminToken = "attack-harness-admin-token-0123456789"

func main() {
	bin := flag.String("wsgate", "", "the wsgate binary (default: built from ../cmd/wsgate)")
	only := flag.String("only", "", "comma-separated attacks to run (default: all)")
	flag.StringVar(&daemonLog, "log", "", "append the daemon's log to this file")
	flag.BoolVar(&oldBinary, "old", false, "the daemon predates record_layer (its TLS listeners always take connections over)")
	flag.Parse()
	if *bin == "" {
		*bin = filepath.Join(os.TempDir(), "wsgate-attack")
		// Built in the main module (the repository's root): bench is a
		// module of its own, which cannot name ../cmd/wsgate.
		build := exec.Command("go", "build", "-o", *bin, "./cmd/wsgate")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building wsgate: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	fmt.Println("| attack (one source, 127.0.0.2) | attacker's load | RSS before | RSS peak | RSS 10 s after | daemon CPU during the attack | legitimate client (127.0.0.3): success | p50 | max |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, a := range attacks {
		if *only != "" && !strings.Contains(","+*only+",", ","+a.name+",") {
			continue
		}
		row, err := run(*bin, a)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", a.name, err)
			continue
		}
		fmt.Println(row)
	}
}

type attack struct {
	name, desc string
	config     string // the server and route part of the configuration
	// hit runs the attack against addr until stop is closed; it returns
	// what was done, and the connections to close afterwards.
	hit func(addr, admin string, stop <-chan struct{}) (string, []net.Conn)
	// recordLayer, if set, adds a TLS listener with that record_layer,
	// whose address hit gets instead of the plain one (the legitimate
	// client stays on the plain one).
	recordLayer string
	// proxied puts Debian's nginx in front, set up as the README says
	// (X-Forwarded-For appended): the attacker and the legitimate client
	// both go through it.
	proxied bool
}

// oldBinary: the daemon is a build from before record_layer existed
// (every TLS listener took connections over): the key is left out.
var oldBinary bool

var attacks = []attack{
	{name: "keyupdate-wsgate", desc: "KeyUpdate flood, record_layer wsgate", config: "routes: [{path: /echo, app: echo}]\n", recordLayer: "wsgate",
		hit: func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			return keyUpdateFlood(addr, stop), nil
		}},
	{name: "keyupdate-go", desc: "KeyUpdate flood, record_layer go", config: "routes: [{path: /echo, app: echo}]\n", recordLayer: "go",
		hit: func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			return keyUpdateFlood(addr, stop), nil
		}},
	{name: "forged", desc: "1,500 WebSockets through nginx, each with a forged X-Forwarded-For and Forwarded",
		config: "defaults: {trusted_proxies: [127.0.0.1]}\nroutes: [{path: /echo, app: echo}]\n", proxied: true,
		hit: func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			var held []net.Conn
			refused := 0
			for i := range 1500 {
				nc := mustFrom("127.0.0.2", addr)
				fmt.Fprintf(nc, "GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 10.%d.%d.%d\r\nForwarded: for=10.%d.%d.%d\r\n\r\n",
					addr, i>>16&255, i>>8&255, i&255, i>>16&255, i>>8&255, i&255)
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(nc).ReadString('\n')
				nc.SetReadDeadline(time.Time{})
				if err == nil && strings.Contains(line, " 101 ") {
					held = append(held, nc)
				} else {
					refused++
					nc.Close()
				}
			}
			return fmt.Sprintf("1,500 WebSockets through nginx, each claiming another address: %d admitted, %d refused", len(held), refused), held
		}},
	{"pending", "1,030 silent or half-sent requests", "routes: [{path: /echo, app: echo}]\n",
		func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			var held []net.Conn
			refused := 0
			for i := range 1030 {
				c, err := from("127.0.0.2", addr)
				if err != nil {
					refused++
					continue
				}
				if i%2 == 1 {
					io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n")
				}
				held = append(held, c)
			}
			return fmt.Sprintf("1,030 silent or half-sent requests held (%d refused at connect)", refused), held
		}, "", false},
	{"keepalive", "keep-alive HTTP connections, one request each", "server: {demo: true}\nroutes: [{path: /echo, app: echo}]\n",
		func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			// 32 at a time: as fast as one host opens them, so that the
			// first are still held when the last are made.
			var mu sync.Mutex
			var held []net.Conn
			var open atomic.Int64
			parallel(18900, 32, func() {
				c, err := from("127.0.0.2", addr)
				if err != nil {
					return
				}
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode == 200 {
					io.Copy(io.Discard, resp.Body)
					open.Add(1)
				}
				c.SetReadDeadline(time.Time{})
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			})
			return fmt.Sprintf("18,900 keep-alive connections opened, 32 at a time (%d answered)", open.Load()), held
		}, "", false},
	{"pipeline", "pipelined requests on keep-alive connections", "server: {demo: true}\nroutes: [{path: /echo, app: echo}]\n",
		func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			// 500 connections, each writing 2,000 requests at once and
			// reading what comes back; a sender keeps writing while the
			// daemon answers.
			var answered, sent atomic.Int64
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			batch := bytes.Repeat(req, 2000)
			parallel(500, 100, func() {
				c, err := from("127.0.0.2", addr)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				go func() {
					if n, err := c.Write(batch); err == nil || n > 0 {
						sent.Add(int64(n / len(req)))
					}
				}()
				br := bufio.NewReader(c)
				for {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					answered.Add(1)
				}
			})
			return fmt.Sprintf("500 connections × 2,000 pipelined GETs: %d requests written, %d answered", sent.Load(), answered.Load()), nil
		}, "", false},
	{"partial", "1 MiB partial messages", "server: {memory_limit: 1GiB}\nroutes: [{path: /echo, app: echo}]\n",
		func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			var held []net.Conn
			frame := load.Frame(0x2, make([]byte, 1<<20), false)
			frame[0] &^= 0x80 // not final: the message never ends
			refused := 0
			for range 3000 {
				c, err := load.Handshake(mustFrom("127.0.0.2", addr), addr, "/echo", "", 512)
				if err != nil {
					refused++
					continue
				}
				c.NC.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.NC.Write(frame)
				held = append(held, c.NC)
			}
			return fmt.Sprintf("3,000 WebSockets tried, each to send 1 MiB into a message it never ends (memory_limit 1GiB): %d refused", refused), held
		}, "", false},
	{"headers", "idle WebSockets with a 15 KB header", "server: {max_connections_per_ip: 6000}\nroutes: [{path: /echo, app: echo}]\n",
		func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			var held []net.Conn
			pad := strings.Repeat("c", 15000)
			for range 5000 {
				nc := mustFrom("127.0.0.2", addr)
				fmt.Fprintf(nc, "GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: %s\r\n\r\n", addr, pad)
				br := bufio.NewReader(nc)
				if line, err := br.ReadString('\n'); err == nil && strings.Contains(line, "101") {
					held = append(held, nc)
				} else {
					nc.Close()
				}
			}
			return fmt.Sprintf("%d idle WebSockets with a 15 KB Cookie", len(held)), held
		}, "", false},
	{"publish", "16 MiB POSTs to the admin listener", "routes: [{path: /echo, app: echo}]\n",
		func(_, admin string, stop <-chan struct{}) (string, []net.Conn) {
			body := []byte(`{"items":[{"channel":"c","formats":{"ws-message":{"content":"` + strings.Repeat("x", 16<<20) + `"}}}]}`)
			codes := map[int]int{}
			for range 60 {
				req, _ := http.NewRequest("POST", "http://"+admin+"/publish/", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+adminToken)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					codes[resp.StatusCode]++
					resp.Body.Close()
				}
			}
			return fmt.Sprintf("60 POSTs of 16 MiB to /publish/ (answers %v)", codes), nil
		}, "", false},
	{"inflate", "frames that inflate a thousandfold", "routes: [{path: /echo, app: echo, deflate: true, max_message_size: 2MiB}]\n",
		func(addr, _ string, stop <-chan struct{}) (string, []net.Conn) {
			var sent atomic.Int64
			var wg sync.WaitGroup
			frame := deflateBomb()
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := load.Handshake(mustFrom("127.0.0.2", addr), addr, "/echo", load.Deflate, 64<<10)
					if err != nil {
						return
					}
					defer c.NC.Close()
					go io.Copy(io.Discard, c.NC)
					for {
						select {
						case <-stop:
							return
						default:
						}
						c.NC.SetWriteDeadline(time.Now().Add(time.Second))
						if _, err := c.NC.Write(frame); err != nil {
							return
						}
						sent.Add(1)
					}
				}()
			}
			<-stop
			wg.Wait()
			return fmt.Sprintf("4 clients sending %d-byte frames that inflate to 1 MiB (%d sent)", len(frame), sent.Load()), nil
		}, "", false},
}

// run starts a daemon, measures the legitimate client for 3 s alone, then
// during the attack (and 10 s of it), then RSS 10 s after the attack ends.
func run(bin string, a attack) (string, error) {
	dir, _ := os.MkdirTemp("", "attack")
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "wsgate.yaml")
	listen := "listen: [{address: 127.0.0.1:0}]\n"
	if a.recordLayer != "" {
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := load.WriteCert(cert, key); err != nil {
			return "", err
		}
		rl := ", record_layer: " + a.recordLayer
		if oldBinary {
			if a.recordLayer != "wsgate" {
				return "", fmt.Errorf("an old binary has only the wsgate record layer")
			}
			rl = ""
		}
		listen = fmt.Sprintf("listen: [{address: 127.0.0.1:0}, {address: 127.0.0.1:0, tls: {cert: %s, key: %s%s}}]\n", cert, key, rl)
	}
	// Control on a TCP admin listener needs a token (reads stay open): the
	// publish attack is an authenticated publisher's, not a stranger's.
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		return "", err
	}
	adminCfg := fmt.Sprintf("admin: {listen: 127.0.0.1:0, auth: {bearer_token_file: %s, public_reads: true}}\n", tokenFile)
	os.WriteFile(cfgPath, []byte(listen+adminCfg+"log: {access: false}\n"+a.config), 0o644)
	cmd := exec.Command(bin, "-config", cfgPath)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr, tlsAddr, admin := "", "", ""
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`msg="?(listening|admin listening)"? address=(\S+) network=\S+( tls=true)?`)
	for (addr == "" || admin == "" || a.recordLayer != "" && tlsAddr == "") && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			switch {
			case m[1] != "listening":
				admin = m[2]
			case m[3] != "":
				tlsAddr = m[2]
			default:
				addr = m[2]
			}
		}
	}
	var sink io.Writer = io.Discard
	if daemonLog != "" {
		if f, err := os.OpenFile(daemonLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			defer f.Close()
			sink = f
		}
	}
	go io.Copy(sink, stderr)
	if addr == "" {
		return "", fmt.Errorf("the daemon did not start")
	}
	target := addr
	if a.recordLayer != "" {
		target = tlsAddr
	}
	if a.proxied {
		front, stopNginx, err := nginxFront(dir, addr)
		if err != nil {
			return "", err
		}
		defer stopNginx()
		target, addr = front, front
	}
	pid := cmd.Process.Pid
	before := load.RSS(pid, false)
	stop := make(chan struct{})
	var peak atomic.Int64
	peak.Store(before)
	sampling := make(chan struct{})
	go func() {
		for {
			select {
			case <-sampling:
				return
			case <-time.After(100 * time.Millisecond):
				if r := load.RSS(pid, false); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	var lat []time.Duration
	var ok, tries atomic.Int64
	var mu sync.Mutex
	legitDone := make(chan struct{})
	go func() {
		defer close(legitDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			tries.Add(1)
			if legitEcho(addr, i) {
				ok.Add(1)
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	cpu0, t0 := load.CPUTime(pid), time.Now()
	done := make(chan struct{})
	var what string
	var held []net.Conn
	go func() {
		what, held = a.hit(target, admin, stop)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	}
	time.Sleep(10 * time.Second) // the attack holds what it took
	cpu := float64(load.CPUTime(pid)-cpu0) / float64(time.Since(t0))
	close(stop)
	<-legitDone
	<-done
	if len(held) > 0 {
		what += fmt.Sprintf("; %d still open at the end", stillOpen(held))
	}
	for _, c := range held {
		c.Close()
	}
	time.Sleep(10 * time.Second)
	close(sampling)
	after := load.RSS(pid, false)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, mx := time.Duration(0), time.Duration(0)
	if n := len(lat); n > 0 {
		p50, mx = lat[n/2], lat[n-1]
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %.0f%% | %d of %d (%.1f%%) | %v | %v |", a.desc, what, mib(before), mib(peak.Load()), mib(after), 100*cpu,
		ok.Load(), tries.Load(), 100*float64(ok.Load())/float64(max(1, tries.Load())), p50.Round(100*time.Microsecond), mx.Round(100*time.Microsecond)), nil
}

// stillOpen counts the connections the daemon has not closed: a read
// that times out instead of finding the end of the stream.
func stillOpen(conns []net.Conn) int {
	n := 0
	buf := make([]byte, 64<<10)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				n++
			}
			break
		}
	}
	return n
}

// nginxFront starts Debian's nginx in front of addr, set up as the
// README's "The daemon behind nginx" says, and returns its address.
func nginxFront(dir, addr string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	front := l.Addr().String()
	l.Close()
	conf, err := nginx.Config(dir, front, addr, 10000,
		"            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n            proxy_set_header X-Forwarded-Proto $scheme;\n")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("/usr/sbin/nginx", "-c", conf, "-p", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for range 200 {
		if c, err := net.Dial("tcp", front); err == nil {
			c.Close()
			return front, stop, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("nginx did not start")
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// legitEcho is one legitimate client: a handshake and an echo, from
// 127.0.0.3, within 10 s.
func legitEcho(addr string, i int) bool {
	nc, err := from("127.0.0.3", addr)
	if err != nil {
		return false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := load.Handshake(nc, addr, "/echo", "", 4096)
	if err != nil {
		return false
	}
	msg := []byte(fmt.Sprint("legit ", i))
	if _, err := nc.Write(load.Frame(0x1, msg, false)); err != nil {
		return false
	}
	_, p, err := c.ReadPayload()
	return err == nil && bytes.Equal(p, msg)
}

func from(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

func mustFrom(src, addr string) net.Conn {
	c, err := from(src, addr)
	if err != nil {
		// A refused connection: the handshake on it fails.
		a, b := net.Pipe()
		b.Close()
		return a
	}
	return c
}

// deflateBomb is one masked, compressed frame whose message inflates to
// 1 MiB of zeros: about a kilobyte on the wire.
func deflateBomb() []byte {
	var z bytes.Buffer
	w := newFlateWriter(&z)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	p := z.Bytes()[:z.Len()-4]
	return load.Frame(0x2, p, true)
}

// parallel runs fn n times, at most width at once, and returns when every
// run has ended: the bounded dialling loops of the attacks.
func parallel(n, width int, fn func()) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn()
		}()
	}
	wg.Wait()
}
