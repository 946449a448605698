package tlsrec

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testcert"
)

const head101 = "HTTP/1.1 101 Switching Protocols\r\n\r\n"

// upgradeServer accepts connections through NewListener and does what the
// daemon does with each: reads a request head through a bufio.Reader (as
// net/http does), answers 101, calls Take, and then echoes every byte
// through the record layer it got (or through crypto/tls when Take
// declined), the read-ahead bytes first. On the peer's close_notify it
// sends its own and waits for the peer to close the socket. Take's result
// goes to taken; hook, if set, runs on the layer before the echo.
func upgradeServer(t *testing.T, cfg *tls.Config, hook func(*Layer, net.Conn)) (addr string, taken chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tl := NewListener(ln, cfg)
	taken = make(chan error, 16)
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go serveUpgrade(c.(*tls.Conn), taken, hook)
		}
	}()
	return ln.Addr().String(), taken
}

func serveUpgrade(tc *tls.Conn, taken chan error, hook func(*Layer, net.Conn)) {
	defer tc.NetConn().Close()
	br := bufio.NewReaderSize(tc, 4096)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			taken <- err
			return
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := tc.Write([]byte(head101)); err != nil {
		taken <- err
		return
	}
	ahead, _ := br.Peek(br.Buffered())
	ahead = append([]byte(nil), ahead...)
	br.Discard(len(ahead))
	l, raw, extra, err := Take(tc)
	taken <- err
	ahead = append(ahead, extra...)
	if err != nil {
		if !errors.Is(err, ErrVersion) && !errors.Is(err, ErrNotRecorded) {
			return
		}
		tc.Write(ahead)
		io.Copy(tc, tc)
		tc.CloseWrite()
		return
	}
	if hook != nil {
		hook(l, raw)
	}
	echo := writerFunc(func(p []byte) (int, error) {
		out := make([]byte, 0, SealedLen(len(p)))
		out = l.Seal(out, [][]byte{p}, 0)
		_, err := raw.Write(out)
		return len(p), err
	})
	if len(ahead) > 0 {
		echo.Write(ahead)
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := raw.Read(buf)
		if n > 0 {
			if err := l.Open(buf[:n], echo); err != nil {
				if err == io.EOF {
					raw.Write(l.SealAlert(nil))
					io.Copy(io.Discard, raw)
				}
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// TestTakeoverGoClient drives the takeover with crypto/tls as the client:
// whatever reaches the server around the upgrade (in the request's
// record, in records behind it, in none) comes back once and in order,
// over records of every size, and both sides' close_notify is understood.
func TestTakeoverGoClient(t *testing.T) {
	scfg, ccfg := testcert.Config(t)
	cases := []struct {
		name     string
		max      uint16   // client's highest version
		ahead    [][]byte // sent after the request, each in its own Write, before the 101 is read
		sameRec  bool     // the first of ahead goes in the request's own Write
		messages []int
		want     error
	}{
		{name: "request alone", messages: []int{1, 100, 16383, 16384, 16385, 70000}},
		{name: "bytes in the request's record", ahead: [][]byte{pattern(3000, 1)}, sameRec: true, messages: []int{10}},
		{name: "records behind the request", ahead: [][]byte{pattern(20, 2), pattern(17000, 3), pattern(5, 4)}, messages: []int{10}},
		{name: "TLS 1.2 stays with crypto/tls", max: tls.VersionTLS12, ahead: [][]byte{pattern(50, 5)}, sameRec: true, messages: []int{1, 20000}, want: ErrVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, taken := upgradeServer(t, scfg, nil)
			cc := ccfg.Clone()
			cc.MaxVersion = tc.max
			c, err := tls.Dial("tcp", addr, cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			req := []byte("GET /chat HTTP/1.1\r\nHost: x\r\n\r\n")
			var want []byte
			for i, a := range tc.ahead {
				if i == 0 && tc.sameRec {
					req = append(req, a...)
				} else if i == 0 {
					c.Write(req)
					req = nil
				}
				if i > 0 || !tc.sameRec {
					c.Write(a)
				}
				want = append(want, a...)
			}
			if req != nil {
				c.Write(req)
			}
			br := bufio.NewReader(c)
			got := make([]byte, len(head101))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != head101 {
				t.Fatalf("101: %q %v", got, err)
			}
			if err := <-taken; !errors.Is(err, tc.want) {
				t.Fatalf("Take: %v, want %v", err, tc.want)
			}
			for i, n := range tc.messages {
				p := pattern(n, 10+i)
				c.Write(p)
				want = append(want, p...)
			}
			got = make([]byte, len(want))
			if _, err := io.ReadFull(br, got); err != nil {
				t.Fatalf("echo: %v after %d bytes", err, len(got))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("echo differs (%d bytes)", len(want))
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			// The server's close_notify ends the stream while the socket is
			// still open: crypto/tls reports EOF only for a valid alert.
			if n, err := br.Read(got[:1]); n != 0 || err != io.EOF {
				t.Fatalf("after close_notify: %d %v, want EOF", n, err)
			}
		})
	}
}

// TestKeyUpdateGoClient: crypto/tls decrypts the server's records across
// the KeyUpdates this side sends when a key has sealed keyUpdateAfter
// records, and answers the one that requests an update, which Open then
// follows (RFC 8446 §4.6.3).
func TestKeyUpdateGoClient(t *testing.T) {
	scfg, ccfg := testcert.Config(t)
	defer func(n uint64) { keyUpdateAfter = n }(keyUpdateAfter)
	keyUpdateAfter = 3
	addr, taken := upgradeServer(t, scfg, func(l *Layer, raw net.Conn) {
		// Ask the client to update its key too.
		rec := append([]byte(nil), recordHeader[:]...)
		rec = append(rec, typeKeyUpdate, 0, 0, 1, 1)
		rec = l.seal(rec, 0, typeHandshake)
		if err := l.out.update(); err != nil {
			panic(err)
		}
		raw.Write(rec)
	})
	c, err := tls.Dial("tcp", addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	br := bufio.NewReader(c)
	head := make([]byte, len(head101))
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	if err := <-taken; err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		p := pattern(1+i*1000, i)
		c.Write(p)
		got := make([]byte, len(p))
		if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// TestTakeoverOpenSSL runs the takeover against OpenSSL's s_client for
// each TLS 1.3 cipher suite, and with the client's KeyUpdate that
// requests one back ("K", which s_client sends on its own line).
func TestTakeoverOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
			t.Fatal("openssl is required: run ./scripts/test.sh, which installs it")
		}
		t.Skip("openssl is not installed (Debian openssl)")
	}
	scfg, _ := testcert.Config(t)
	for _, suite := range []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		t.Run(suite, func(t *testing.T) {
			addr, taken := upgradeServer(t, scfg, nil)
			cmd := exec.Command("openssl", "s_client", "-connect", addr, "-tls1_3", "-ciphersuites", suite, "-quiet", "-no_ign_eof", "-crlf")
			in, _ := cmd.StdinPipe()
			out, _ := cmd.StdoutPipe()
			stderr := &lockedBuffer{}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			br := bufio.NewReader(out)
			expect := func(want string) {
				t.Helper()
				done := make(chan string, 1)
				go func() {
					got := make([]byte, len(want))
					n, _ := io.ReadFull(br, got)
					done <- string(got[:n])
				}()
				select {
				case got := <-done:
					if got != want {
						t.Fatalf("got %q, want %q; stderr: %s", got, want, stderr.String())
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("no %q; stderr: %s", want, stderr.String())
				}
			}
			// -crlf: s_client sends each line with CRLF, as HTTP wants.
			fmt.Fprint(in, "GET / HTTP/1.1\n\n")
			expect(head101)
			if err := <-taken; err != nil {
				t.Fatal(err)
			}
			for _, line := range []string{"hello", strings.Repeat("x", 3000), "K", "after the key update", "k", "and another"} {
				updates := strings.Count(stderr.String(), "KEYUPDATE")
				fmt.Fprint(in, line+"\n")
				if line == "K" || line == "k" {
					// A command: send a KeyUpdate, requesting one back (K) or
					// not. s_client drops the rest of what it read from stdin
					// with the command, so the next line waits for it.
					for i := 0; strings.Count(stderr.String(), "KEYUPDATE") <= updates; i++ {
						if i == 2000 {
							t.Fatalf("s_client did not take %q: %s", line, stderr.String())
						}
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				expect(line + "\r\n")
			}
		})
	}
}

// TestKeyLogWriterKept: a Config with a KeyLogWriter of its own is still
// taken over, and its writer still gets every line.
func TestKeyLogWriterKept(t *testing.T) {
	scfg, ccfg := testcert.Config(t)
	var kl lockedBuffer
	scfg = scfg.Clone()
	scfg.KeyLogWriter = &kl
	addr, taken := upgradeServer(t, scfg, nil)
	c, err := tls.Dial("tcp", addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	br := bufio.NewReader(c)
	got := make([]byte, len(head101))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	if err := <-taken; err != nil {
		t.Fatalf("Take with a user's KeyLogWriter: %v", err)
	}
	c.Write([]byte("echo"))
	if _, err := io.ReadFull(br, got[:4]); err != nil || string(got[:4]) != "echo" {
		t.Fatalf("echo: %q %v", got[:4], err)
	}
	for _, label := range []string{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} {
		if !strings.Contains(kl.String(), label+" ") {
			t.Errorf("the user's key log has no %s line", label)
		}
	}
}

// TestSecretsCleared: a KeyUpdate clears the secret it replaces, and Take
// and Forget clear what the tap learnt.
func TestSecretsCleared(t *testing.T) {
	a, _ := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
	old := a.out.secret
	if err := a.out.update(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, make([]byte, len(old))) {
		t.Error("the traffic secret a KeyUpdate replaced is still in memory")
	}
	tp := &tap{}
	tp.keyLog([]byte("CLIENT_TRAFFIC_SECRET_0 00 0102030405060708"))
	tp.keyLog([]byte("SERVER_TRAFFIC_SECRET_0 00 0a0b0c0d0e0f1011"))
	cs, ss := tp.clientSecret, tp.serverSecret
	if len(cs) != 8 || len(ss) != 8 {
		t.Fatalf("the tap kept %x and %x", cs, ss)
	}
	tp.stop()
	if !bytes.Equal(cs, make([]byte, 8)) || !bytes.Equal(ss, make([]byte, 8)) || tp.clientSecret != nil {
		t.Errorf("the tap's secrets were not cleared when it stopped: %x %x", cs, ss)
	}
}
