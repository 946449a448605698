package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/testkit/testcert"
	"github.com/wsgate/wsgate/testkit/testserver"
)

var echoSizes = []int{0, 1, 125, 126, 65535, 65536, 1 << 20}

func TestGorillaPeer(t *testing.T) {
	ts := start(t, baseConfig)
	d := websocket.Dialer{WriteBufferSize: 4096} // small buffer: large messages go out fragmented
	c, _, err := d.Dial(ts.URL("/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range echoSizes {
		for _, typ := range []int{websocket.TextMessage, websocket.BinaryMessage} {
			p := bytes.Repeat([]byte("wsgate κόσμε "), n/15+1)
			p = bytes.ToValidUTF8(p[:n], nil)
			if err := c.WriteMessage(typ, p); err != nil {
				t.Fatal(err)
			}
			gt, got, err := c.ReadMessage()
			if err != nil || gt != typ || !bytes.Equal(got, p) {
				t.Fatalf("%d bytes type %d: got type %d, %d bytes, %v", len(p), typ, gt, len(got), err)
			}
		}
	}
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	c.WriteControl(websocket.PingMessage, []byte("gorilla"), time.Now().Add(time.Second))
	go c.ReadMessage()
	select {
	case s := <-pong:
		if s != "gorilla" {
			t.Fatalf("pong %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no pong")
	}
}

func TestGorillaCloseCodes(t *testing.T) {
	ts := start(t, baseConfig)
	c, _, err := websocket.DefaultDialer.Dial(ts.URL("/control"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("close 4321 app says bye"))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4321 || ce.Text != "app says bye" {
		t.Fatalf("%v", err)
	}
}

func TestCoderPeer(t *testing.T) {
	ts := start(t, baseConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := coder.Dial(ctx, ts.URL("/dumb-increment"), &coder.DialOptions{Subprotocols: []string{"dumb-increment-protocol"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "dumb-increment-protocol" || resp.StatusCode != 101 {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	for i := range 3 {
		typ, p, err := c.Read(ctx)
		if err != nil || typ != coder.MessageText || string(p) != fmt.Sprint(i) {
			t.Fatalf("%v %q %v", typ, p, err)
		}
	}
	c.Close(coder.StatusNormalClosure, "")

	e, _, err := coder.Dial(ctx, ts.URL("/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.CloseNow()
	e.SetReadLimit(-1)
	for _, n := range echoSizes {
		p := bytes.Repeat([]byte{0x5A}, n)
		if err := e.Write(ctx, coder.MessageBinary, p); err != nil {
			t.Fatal(err)
		}
		typ, got, err := e.Read(ctx)
		if err != nil || typ != coder.MessageBinary || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: %v %d %v", n, typ, len(got), err)
		}
	}
	if err := e.Close(coder.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

// missingPeer fails the test when WSGATE_REQUIRE_PEERS is set (as the
// test script sets it, so CI never skips a peer) and skips it otherwise.
func missingPeer(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
		t.Fatalf("%s is required: run ./scripts/test.sh, which installs it", what)
	}
	t.Skipf("%s is not installed", what)
}

// python is Debian's Python 3 with python3-websockets.
func python(t *testing.T) string { return testserver.Python(t) }

// TestPythonPeer runs peer.py over ws and over wss, with each record
// layer: with record_layer wsgate every connection's record layer is
// taken over after its upgrade (Python's ssl is OpenSSL), and counted so;
// with the default, go, none is, and each is counted as disabled.
func TestPythonPeer(t *testing.T) {
	py := python(t)
	for _, mode := range []string{"ws", "wss", "wss-wsgate"} {
		t.Run(mode, func(t *testing.T) {
			scheme, layer, _ := strings.Cut(mode, "-")
			conf := baseConfig
			env := os.Environ()
			if scheme == "wss" {
				certFile, keyFile, _ := selfSigned(t)
				rl := ""
				if layer != "" {
					rl = ", record_layer: " + layer
				}
				conf = strings.Replace(conf, "  - address: 127.0.0.1:0\n", fmt.Sprintf("  - address: 127.0.0.1:0\n    tls: {cert: %s, key: %s%s}\n", certFile, keyFile, rl), 1)
				env = append(env, "SSL_CERT_FILE="+certFile)
			}
			ts := start(t, conf)
			before := ts.Front().TLSRecords
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, py, "testdata/peer.py", scheme+"://"+ts.Addr)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("peer.py: %v\n%s", err, out)
			}
			t.Logf("%s", out)
			after := ts.Front().TLSRecords
			switch mode {
			case "wss-wsgate":
				if n := after["taken"] - before["taken"]; n < 6 {
					t.Errorf("%d WebSockets taken over from crypto/tls, want the 6 WebSockets peer.py opens (%v)", n, after)
				}
			case "wss":
				if n := after["disabled"] - before["disabled"]; n < 6 || after["taken"] != before["taken"] {
					t.Errorf("record_layer go: %d WebSockets counted disabled, %d taken over; want 6 and 0 (%v)", n, after["taken"]-before["taken"], after)
				}
			}
		})
	}
}

// selfSigned writes a certificate for 127.0.0.1 and returns its paths and
// a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	return testcert.Write(t, t.TempDir())
}

func TestTLSListener(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ts := start(t, fmt.Sprintf(`
listen:
  - address: 127.0.0.1:0
    tls: {cert: %s, key: %s}
routes:
  - path: /echo
    app: echo
  - path: /control
    app: test-control
`, certFile, keyFile))
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, WriteBufferSize: 4096}
	// Same-origin check with the https scheme.
	h := http.Header{"Origin": {"https://" + ts.Addr}}
	c, _, err := d.Dial("wss://"+ts.Addr+"/echo", h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range echoSizes {
		p := bytes.Repeat([]byte{7}, n)
		c.WriteMessage(websocket.BinaryMessage, p)
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes over TLS: %v", n, err)
		}
	}
	if _, _, err := d.Dial("wss://"+ts.Addr+"/echo", http.Header{"Origin": {"http://" + ts.Addr}}); err == nil {
		t.Fatal("http origin accepted on a TLS listener")
	}
	// Many writers over TLS, and a clean close.
	cc, _, err := d.Dial("wss://"+ts.Addr+"/control", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.WriteMessage(websocket.TextMessage, []byte("burst 4 200"))
	for range 800 {
		if _, _, err := cc.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	cc.WriteMessage(websocket.TextMessage, []byte("close 1000 tls bye"))
	_, _, err = cc.ReadMessage()
	if !websocket.IsCloseError(err, 1000) {
		t.Fatalf("%v", err)
	}
}

func TestUnixListener(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "wsgate.sock")
	ts := start(t, fmt.Sprintf(`
listen:
  - unix: %s
    mode: "0600"
routes:
  - path: /echo
    app: echo
`, sock))
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi, err)
	}
	d := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return net.Dial("unix", sock) }}
	c, _, err := d.Dial("ws://localhost/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("over a UNIX socket"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "over a UNIX socket" {
		t.Fatalf("%q %v", p, err)
	}
	_ = ts
}

// TestRecordLayerSwitch: a TLS listener leaves records to crypto/tls
// unless record_layer says wsgate; the startup log and the metric say
// which, and a reload that changes it applies to the next connections on
// the same socket.
func TestRecordLayerSwitch(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	conf := func(layer string) string {
		rl := ""
		if layer != "" {
			rl = ", record_layer: " + layer
		}
		return fmt.Sprintf("listen:\n  - address: 127.0.0.1:0\n    tls: {cert: %s, key: %s%s}\nroutes:\n  - path: /echo\n    app: echo\n", certFile, keyFile, rl)
	}
	ts := start(t, conf(""))
	if ts.Logs.Count("record_layer=go") != 1 {
		t.Errorf("the startup log does not name the record layer:\n%s", ts.Logs)
	}
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}}
	echo := func() {
		t.Helper()
		c, _, err := d.Dial("wss://"+ts.Addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("hi"))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
			t.Fatalf("echo: %q %v", p, err)
		}
	}
	before := ts.Front().TLSRecords
	echo()
	after := ts.Front().TLSRecords
	if after["disabled"]-before["disabled"] != 1 || after["taken"] != before["taken"] {
		t.Fatalf("record_layer go (the default): %v then %v", before, after)
	}
	if m := ts.Metrics(t); !strings.Contains(m, `wsgate_tls_record_layer_total{result="disabled"}`) {
		t.Errorf("no disabled series in the metrics")
	}
	cfg, err := config.Parse("switch.yaml", []byte(conf("wsgate")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Address = "127.0.0.1:0"
	if err := ts.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if ts.Logs.Count("TLS record layer changed by reload") != 1 {
		t.Errorf("the reload does not say the record layer changed")
	}
	before = ts.Front().TLSRecords
	echo()
	after = ts.Front().TLSRecords
	if after["taken"]-before["taken"] != 1 {
		t.Fatalf("record_layer wsgate after the reload: %v then %v", before, after)
	}
	if _, err := config.Parse("bad.yaml", []byte(conf("openssl"))); err == nil || !strings.Contains(err.Error(), "bad.yaml:3") || !strings.Contains(err.Error(), "record_layer") {
		t.Errorf("record_layer openssl: %v", err)
	}
}
