// Command echoload drives WebSocket echo servers: each connection sends a
// message, waits for the echo, and repeats, for a fixed time. It reports
// messages per second and latency percentiles. Its client side is minimal
// (raw frames, one fixed mask) so it costs little next to the server.
//
//	echoload -url ws://127.0.0.1:8080/echo -conns 100 -size 1024 -duration 5s
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "ws://127.0.0.1:8080/echo", "WebSocket URL (ws://host:port/path)")
	conns := flag.Int("conns", 1, "connections")
	size := flag.Int("size", 64, "payload bytes")
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	binaryMsg := flag.Bool("binary", true, "send binary messages (text otherwise)")
	label := flag.String("label", "", "label printed with the result")
	flag.Parse()
	res, err := Run(*target, *conns, *size, *duration, *binaryMsg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echoload:", err)
		os.Exit(1)
	}
	fmt.Printf("%s conns=%d size=%d msgs/s=%.0f p50=%v p99=%v p999=%v\n", *label, *conns, *size, res.Rate, res.P50, res.P99, res.P999)
}

// Result is one run's outcome.
type Result struct {
	Rate           float64
	P50, P99, P999 time.Duration
}

// Run runs the load and returns its result.
func Run(target string, conns, size int, duration time.Duration, binaryMsg bool) (Result, error) {
	u, err := url.Parse(target)
	if err != nil {
		return Result{}, err
	}
	cs := make([]*client, conns)
	for i := range cs {
		cs[i], err = dial(u, i)
		if err != nil {
			return Result{}, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	defer func() {
		for _, c := range cs {
			// A reset leaves no TIME_WAIT socket behind to slow the next
			// run's connects.
			if tc, ok := c.nc.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.nc.Close()
		}
	}()
	op := byte(0x2)
	if !binaryMsg {
		op = 0x1
	}
	frame := buildFrame(op, size)
	var total atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	hists := make([][]time.Duration, conns)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			// Kept however the loop ends: the deadline that stops a run
			// fails the read in progress.
			defer func() { hists[i] = lat }()
			for !stop.Load() {
				t0 := time.Now()
				if _, err := c.nc.Write(frame); err != nil {
					return
				}
				if err := c.readFrame(); err != nil {
					return
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
				total.Add(1)
			}
		}()
	}
	start := time.Now()
	time.Sleep(duration)
	stop.Store(true)
	n := total.Load()
	elapsed := time.Since(start)
	for _, c := range cs {
		c.nc.SetDeadline(time.Now())
	}
	wg.Wait()
	var all []time.Duration
	for _, h := range hists {
		all = append(all, h...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(math.Ceil(p*float64(len(all))))-1)].Round(time.Microsecond)
	}
	return Result{Rate: float64(n) / elapsed.Seconds(), P50: pct(0.50), P99: pct(0.99), P999: pct(0.999)}, nil
}

type client struct {
	nc net.Conn
	br *bufio.Reader
}

// dial opens connection i from loopback source address 127.0.0.(2+i/20000)
// so that thousands of connections do not exhaust one address's ports.
func dial(u *url.URL, i int) (*client, error) {
	host := u.Host
	if !strings.Contains(host, ":") {
		host += ":80"
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if strings.HasPrefix(host, "127.") {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/20000))}
	}
	nc, err := d.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	path := u.RequestURI()
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, u.Host)
	br := bufio.NewReaderSize(nc, 64<<10)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 101 ") {
		nc.Close()
		return nil, fmt.Errorf("handshake: %q %v", strings.TrimSpace(line), err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			nc.Close()
			return nil, err
		}
		if l == "\r\n" {
			break
		}
	}
	return &client{nc: nc, br: br}, nil
}

// buildFrame returns a masked client frame with a zero mask key, so the
// payload needs no masking work on the client side.
func buildFrame(op byte, n int) []byte {
	var f []byte
	f = append(f, 0x80|op)
	switch {
	case n <= 125:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, 0, 0, 0, 0)
	for i := range n {
		f = append(f, 'a'+byte(i%26))
	}
	return f
}

// readFrame reads one server frame and discards it.
func (c *client) readFrame() error {
	var h [10]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			return err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, h[:8]); err != nil {
			return err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	_, err := c.br.Discard(int(n))
	return err
}
