package apachetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/conformance"
	"github.com/wsgate/wsgate/testkit/natstest"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestSameSemanticsInBothForms runs one table of handshake cases and one
// of frame cases against mod_wsgate and against the standalone daemon,
// configured alike, and requires the same, expected, results.
func TestSameSemanticsInBothForms(t *testing.T) {
	h := start(t, options{Body: conformance.ApacheLocations})
	d := testserver.Start(t, "listen: [{address: 127.0.0.1:0}]\n"+conformance.DaemonRoutes)
	for _, c := range conformance.Handshakes() {
		t.Run("handshake/"+c.Name, func(t *testing.T) {
			ra, err := c.Run(h.Addr())
			if err != nil {
				t.Fatalf("mod_wsgate: %v", err)
			}
			rd, err := c.Run(d.Addr)
			if err != nil {
				t.Fatalf("daemon: %v", err)
			}
			if err := c.Check(ra, h.Addr()); err != nil {
				t.Errorf("mod_wsgate: %v", err)
			}
			if err := c.Check(rd, d.Addr); err != nil {
				t.Errorf("daemon: %v", err)
			}
		})
	}
	for _, c := range conformance.Frames() {
		t.Run("frames/"+c.Name, func(t *testing.T) {
			for _, srv := range []struct{ name, addr string }{{"mod_wsgate", h.Addr()}, {"daemon", d.Addr}} {
				r, err := c.Run(srv.addr)
				if err != nil {
					t.Fatalf("%s: %v", srv.name, err)
				}
				if err := c.Check(r); err != nil {
					t.Errorf("%s: %v", srv.name, err)
				}
			}
		})
	}
}

// TestMPMs runs the frame table and a burst of traffic under each MPM,
// over ws and over wss (mod_ssl).
func TestMPMs(t *testing.T) {
	for _, mpm := range []string{"event", "worker", "prefork"} {
		t.Run(mpm, func(t *testing.T) {
			h := start(t, options{MPM: mpm, TLS: true, Body: conformance.ApacheLocations})
			tlsConfig := &tls.Config{RootCAs: h.Pool}
			for _, c := range conformance.Frames() {
				r, err := c.Run(h.Addr())
				if err == nil {
					err = c.Check(r)
				}
				if err != nil {
					t.Errorf("ws %s: %v", c.Name, err)
				}
				r, err = c.RunTLS(h.TLSAddr(), tlsConfig)
				if err == nil {
					err = c.Check(r)
				}
				if err != nil {
					t.Errorf("wss %s: %v", c.Name, err)
				}
			}
			for _, url := range []string{"ws://" + h.Addr() + "/echo", "wss://" + h.TLSAddr() + "/echo"} {
				echoMany(t, h.Pool, url, 10, 200)
			}
		})
	}
}

// echoMany runs conns clients each echoing n messages of growing sizes.
func echoMany(t *testing.T, pool *x509.CertPool, url string, conns, n int) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}}
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			c, _, err := d.Dial(url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range n {
				p := bytes.Repeat([]byte{byte(i + j)}, 1+(j*397)%70000)
				if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
					errs <- err
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, got, err := c.ReadMessage()
				if err != nil || !bytes.Equal(got, p) {
					errs <- fmt.Errorf("message %d: %v", j, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
}

// TestPythonPeerThroughApache runs the Python websockets peer from the
// daemon's tests against mod_wsgate's built-in applications.
func TestPythonPeerThroughApache(t *testing.T) {
	need(t)
	// httpd's two children may each get one of the chat's clients: the
	// chat reaches across them through the cluster, as an operator would
	// run it.
	nats := natstest.StartCluster(t, 1)
	h := start(t, options{Global: "WsgateCluster " + nats[0].URL() + "\n", Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
<Location /dumb-increment>
  SetHandler websocket-handler
  WebSocketApp dumb-increment
</Location>
<Location /chat>
  SetHandler websocket-handler
  WebSocketApp chat
</Location>
<Location /control>
  SetHandler websocket-handler
  WebSocketHandler {{BUILD}}/plugins/debug.so debug_init
</Location>
`})
	py := testserver.Python(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := `
import asyncio, sys, websockets
async def main():
    base = sys.argv[1]
    async with websockets.connect(base + "/echo", max_size=None) as ws:
        for n in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            data = bytes(i % 256 for i in range(n))
            await ws.send(data)
            assert await ws.recv() == data, n
        await ws.send("κόσμε")
        assert await ws.recv() == "κόσμε"
    async with websockets.connect(base + "/dumb-increment", subprotocols=["dumb-increment-protocol"]) as ws:
        assert [await ws.recv() for _ in range(3)] == ["0", "1", "2"]
    async with websockets.connect(base + "/chat") as a, websockets.connect(base + "/chat") as b:
        # A child's link to the cluster comes up once it has a client:
        # say it again until the other client hears.
        for _ in range(60):
            await a.send("hi")
            try:
                if await asyncio.wait_for(b.recv(), 0.5) == "hi":
                    break
            except asyncio.TimeoutError:
                pass
        else:
            raise SystemExit("the chat never reached the other client")
    ws = await websockets.connect(base + "/control")
    await ws.send("close")
    try:
        await ws.recv()
        raise SystemExit("no close")
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None and e.rcvd.code == 1005, e
    print("ok")
asyncio.run(main())
`
	out, err := exec.CommandContext(ctx, py, "-c", script, "ws://"+h.Addr()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("%v\n%s\n%s", err, out, h.Log())
	}
}

// TestNotAnUpgradeFallsThrough: a plain request on a WebSocket location
// goes to httpd's other handlers (here the default one: 404), as
// apache-websocket declines it.
func TestNotAnUpgradeFallsThrough(t *testing.T) {
	h := start(t, options{Body: conformance.ApacheLocations})
	resp, err := http.Get("http://" + h.Addr() + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestHeaderSpellingInHTTPD: mod_wsgate's 101 spells the protocol's
// header fields as RFC 6455 does, byte for byte (httpd writes names as
// the module gives them).
func TestHeaderSpellingInHTTPD(t *testing.T) {
	h := start(t, options{Body: `<Location /inc>
  SetHandler websocket-handler
  WebSocketApp dumb-increment
</Location>
`})
	nc, err := net.Dial("tcp", h.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "GET /inc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: dumb-increment-protocol\r\n\r\n")
	br := bufio.NewReader(nc)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%v after %q", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	for _, want := range []string{" 101 ", "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "\r\nSec-WebSocket-Protocol: dumb-increment-protocol\r\n"} {
		if !strings.Contains(head.String(), want) {
			t.Errorf("the 101 lacks %q:\n%s", want, head.String())
		}
	}
}
