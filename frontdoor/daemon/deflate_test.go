package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/flate"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

const deflateConfig = baseConfig + `
  - path: /deflate
    app: test-control
    deflate: {server_context_takeover: true, client_context_takeover: true, threshold: 0}
  - path: /deflate-default
    app: echo
    deflate: true
  - path: /deflate-small
    app: echo
    max_message_size: 64KiB
    deflate: {server_max_window_bits: 9, client_max_window_bits: 9, threshold: 16}
  - path: /deflate-off
    app: echo
    deflate: {enabled: false}
`

func TestDeflateHandshake(t *testing.T) {
	ts := start(t, deflateConfig)
	cases := []struct {
		path, offer string
		status      int
		resp        string
	}{
		{"/deflate", "permessage-deflate; client_max_window_bits", 101, "permessage-deflate"},
		{"/deflate-default", "permessage-deflate; client_max_window_bits", 101, "permessage-deflate; server_no_context_takeover"},
		{"/deflate-default", "permessage-deflate; server_max_window_bits=10", 101, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"},
		{"/deflate-small", "permessage-deflate; client_max_window_bits", 101, "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"},
		{"/deflate-small", "permessage-deflate; server_max_window_bits=12", 101, "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"},
		{"/deflate", "permessage-deflate; bogus, permessage-deflate; client_no_context_takeover", 101, "permessage-deflate; client_no_context_takeover"},
		{"/deflate", "permessage-deflate; server_max_window_bits=99", 101, ""},
		{"/deflate", "x-webkit-deflate-frame", 101, ""},
		{"/deflate", "permessage-deflate; ;", 400, ""},
		{"/deflate-off", "permessage-deflate", 101, ""},
		{"/control", "permessage-deflate", 101, ""},
		{"/control", "permessage-deflate; ;", 101, ""}, // no deflate on the route: the header is not read
	}
	for _, tc := range cases {
		t.Run(tc.path+" "+tc.offer, func(t *testing.T) {
			c, err := ws.Dial(ts.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			resp, err := c.Handshake(ws.Request(tc.path, "Sec-WebSocket-Extensions: "+tc.offer))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || resp.Header.Get("Sec-WebSocket-Extensions") != tc.resp {
				t.Fatalf("%s, extensions %q; want %d, %q", resp.Status, resp.Header.Get("Sec-WebSocket-Extensions"), tc.status, tc.resp)
			}
		})
	}
}

func TestDeflateOnTheWire(t *testing.T) {
	ts := start(t, deflateConfig)
	compress := func(p []byte, level int) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, level)
		w.Write(p)
		w.Flush()
		return b.Bytes()[:b.Len()-4]
	}
	t.Run("RSV1 on a continuation", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/deflate-default", "Sec-WebSocket-Extensions: permessage-deflate")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		z := compress([]byte("fragmented and compressed"), 5)
		c.Write(ws.Concat(ws.Frame{Op: ws.OpText, RSV: 0x40, Masked: true, Payload: z[:4]}.Bytes(),
			ws.Frame{Fin: true, Op: ws.OpCont, RSV: 0x40, Masked: true, Payload: z[4:]}.Bytes()))
		if cl, _, err := c.ReadUntilClose(); err != nil || cl.Code() != 1002 {
			t.Fatalf("%v %v", cl, err)
		}
	})
	t.Run("RSV1 without negotiation", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/deflate-default")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(ws.Frame{Fin: true, Op: ws.OpText, RSV: 0x40, Masked: true, Payload: compress([]byte("x"), 5)}.Bytes())
		if cl, _, err := c.ReadUntilClose(); err != nil || cl.Code() != 1002 {
			t.Fatalf("%v %v", cl, err)
		}
	})
	t.Run("bomb", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/deflate-small", "Sec-WebSocket-Extensions: permessage-deflate")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 60 MiB of zeros, about 60 KiB compressed: under the route's 64 KiB
		// limit on the wire, a thousand times over it inflated.
		z := compress(make([]byte, 60<<20), 1)
		if len(z) > 64<<10 {
			t.Fatalf("bomb is %d bytes", len(z))
		}
		c.Write(ws.Frame{Fin: true, Op: ws.OpBinary, RSV: 0x40, Masked: true, Payload: z}.Bytes())
		if cl, _, err := c.ReadUntilClose(); err != nil || cl.Code() != 1009 {
			t.Fatalf("%v %v", cl, err)
		}
	})
	t.Run("compressed, uncompressed and fragmented with a ping", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/deflate-default", "Sec-WebSocket-Extensions: permessage-deflate")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p := bytes.Repeat([]byte("wsgate "), 200)
		z := compress(p, 5)
		c.Write(ws.Concat(
			ws.Frame{Fin: true, Op: ws.OpText, RSV: 0x40, Masked: true, Payload: z}.Bytes(),
			ws.Text("plain"),
			ws.Frame{Op: ws.OpText, RSV: 0x40, Masked: true, Payload: z[:10]}.Bytes(),
			ws.Ping([]byte("between")),
			ws.Cont(false, z[10:20]),
			ws.Cont(true, z[20:]),
		))
		var got []string
		for len(got) < 4 {
			f, err := c.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			payload := f.Payload
			if f.RSV&0x40 != 0 {
				r := flate.NewReader(bytes.NewReader(append(f.Payload, 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff)))
				var b bytes.Buffer
				b.ReadFrom(r)
				payload = b.Bytes()
			}
			got = append(got, fmt.Sprintf("%x:%d", f.Op, len(payload)))
			if f.Op == ws.OpText && len(payload) > 5 && !bytes.Equal(payload, p) {
				t.Fatal("echo differs")
			}
		}
		want := []string{"1:1400", "1:5", "a:7", "1:1400"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("frames %v, want %v", got, want)
		}
	})
}

func TestDeflatePythonPeer(t *testing.T) {
	py := python(t)
	ts := start(t, deflateConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/deflate_peer.py", "ws://"+ts.Addr).CombinedOutput()
	if err != nil {
		t.Fatalf("deflate_peer.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestDeflateGorillaPeer(t *testing.T) {
	ts := start(t, deflateConfig)
	d := websocket.Dialer{EnableCompression: true}
	for _, path := range []string{"/deflate", "/deflate-default", "/deflate-small"} {
		c, resp, err := d.Dial(ts.URL(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			t.Fatalf("%s: not negotiated: %q", path, resp.Header.Get("Sec-WebSocket-Extensions"))
		}
		c.SetReadLimit(1 << 20)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range 300 {
			p := []byte(strings.Repeat(fmt.Sprintf("gorilla %d %d ", i, r.IntN(100)), 1+r.IntN(300)))
			if len(p) > 60<<10 {
				p = p[:60<<10]
			}
			if err := c.WriteMessage(websocket.TextMessage, p); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.ReadMessage()
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%s message %d: %v", path, i, err)
			}
		}
		c.Close()
	}
}

func TestDeflateCoderPeer(t *testing.T) {
	ts := start(t, deflateConfig)
	var sent uint64 // payload bytes each way
	for _, tc := range []struct {
		mode coder.CompressionMode
		ext  string // what the 101 must answer to coder's offer
	}{
		{coder.CompressionContextTakeover, "permessage-deflate"},
		{coder.CompressionNoContextTakeover, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	} {
		mode := tc.mode
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, resp, err := coder.Dial(ctx, ts.URL("/deflate"), &coder.DialOptions{CompressionMode: mode, CompressionThreshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.ext {
			t.Errorf("mode %v: negotiated %q, want %q", mode, got, tc.ext)
		}
		r := rand.New(rand.NewPCG(5, 6))
		for i := range 1000 {
			p := []byte(fmt.Sprintf(`{"seq":%d,"price":%d,"symbol":"WSG","side":"buy"}`, i, r.IntN(1e6)))
			sent += uint64(len(p))
			if err := c.Write(ctx, coder.MessageText, p); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("mode %v message %d: %v", mode, i, err)
			}
		}
		c.Close(coder.StatusNormalClosure, "")
		cancel()
	}
	// Every message from coder came compressed (RSV1), and every one of
	// the server's with context takeover; without it, the server sends a
	// message as it is when compression does not make it smaller, which
	// these ~50-byte ones mostly are not.
	var in, out, rawIn, rawOut uint64
	if !waitFor(10*time.Second, func() bool {
		for _, r := range ts.Snapshot() {
			if r.Route == "/deflate" {
				in, out, rawIn, rawOut = r.DeflatedIn, r.DeflatedOut, r.UncompressedIn, r.UncompressedOut
				return r.Ended == 2
			}
		}
		return false
	}) || in == 0 || out == 0 || rawIn != sent || rawOut < sent/2 {
		t.Errorf("compressed bytes: in %d (%d uncompressed), out %d (%d); %d sent each way", in, rawIn, out, rawOut, sent)
	}
}
