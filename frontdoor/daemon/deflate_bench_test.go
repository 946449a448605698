package daemon_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/wsgate/wsgate/frontdoor/netconn"
	ws "github.com/wsgate/wsgate/testkit/wstest"
	wsg "github.com/wsgate/wsgate/websocket"
)

// BenchmarkDeflatePeers sends and receives the same compressed payloads
// through wsgate and through gorilla/websocket in one run, each over a
// loopback TCP connection to a raw peer, with permessage-deflate without
// context takeover (gorilla's only mode) at level 1 (gorilla's default).
// Compare the two lines of each pair; absolute figures depend on the
// machine.
func BenchmarkDeflatePeers(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		payloads := benchPayloads(n, 64)
		b.Run(fmt.Sprintf("send-%d/wsgate", n), func(b *testing.B) { benchWsgateSend(b, payloads) })
		b.Run(fmt.Sprintf("send-%d/gorilla", n), func(b *testing.B) { benchGorillaSend(b, payloads) })
		frames := clientFrames(payloads)
		b.Run(fmt.Sprintf("receive-%d/wsgate", n), func(b *testing.B) { benchWsgateReceive(b, frames, n) })
		b.Run(fmt.Sprintf("receive-%d/gorilla", n), func(b *testing.B) { benchGorillaReceive(b, frames, n) })
	}
}

func benchPayloads(n, count int) [][]byte {
	r := rand.New(rand.NewPCG(21, 22))
	out := make([][]byte, count)
	for i := range out {
		var b bytes.Buffer
		for b.Len() < n {
			fmt.Fprintf(&b, `{"id":%d,"user":"u%d","op":"move","x":%d,"y":%d}`, r.IntN(1e6), r.IntN(40), r.IntN(800), r.IntN(600))
		}
		out[i] = b.Bytes()[:n]
	}
	return out
}

// clientFrames compresses each payload on its own, as a client without
// context takeover sends it.
func clientFrames(payloads [][]byte) [][]byte {
	out := make([][]byte, len(payloads))
	for i, p := range payloads {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, 1)
		w.Write(p)
		w.Flush()
		out[i] = ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpText, Masked: true, Payload: z.Bytes()[:z.Len()-4]}.Bytes()
	}
	return out
}

func tcpPair(b *testing.B) (server, client net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return <-ch, client
}

type countHandler struct{ n atomic.Int64 }

func (h *countHandler) OnMessage(*wsg.Conn, wsg.MessageType, []byte) { h.n.Add(1) }
func (h *countHandler) OnClose(*wsg.Conn, wsg.CloseStatus)           {}

// deflateConn is a connection that negotiated permessage-deflate without
// context takeover, compressing every message at level 1, as gorilla does
// below.
func deflateConn(b *testing.B, h wsg.Handler, opts wsg.Options) *wsg.Conn {
	req := httptest.NewRequest("GET", "/", nil)
	for k, v := range map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": ws.Key, "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; client_no_context_takeover"} {
		req.Header.Set(k, v)
	}
	hs, err := wsg.CheckUpgrade(req)
	if err != nil {
		b.Fatal(err)
	}
	if err := hs.NegotiateDeflate(req.Header, wsg.DeflatePolicy{Threshold: 1, Level: 1}); err != nil {
		b.Fatal(err)
	}
	return hs.NewConn(h, opts)
}

func benchWsgateSend(b *testing.B, payloads [][]byte) {
	sc, cc := tcpPair(b)
	defer cc.Close()
	go io.Copy(io.Discard, cc)
	c := deflateConn(b, &countHandler{}, wsg.Options{MaxQueue: 1 << 30})
	c.Serve(netconn.New(sc, c, nil))
	b.SetBytes(int64(len(payloads[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := c.Send(wsg.TextMessage, payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	c.Abort()
}

func benchWsgateReceive(b *testing.B, frames [][]byte, n int) {
	sc, cc := tcpPair(b)
	defer cc.Close()
	h := &countHandler{}
	c := deflateConn(b, h, wsg.Options{})
	c.Serve(netconn.New(sc, c, nil))
	benchReceive(b, cc, frames, n, func() int64 { return h.n.Load() })
	c.Abort()
}

// benchReceive writes b.N client frames from a goroutine and waits until
// the server side has delivered them all.
func benchReceive(b *testing.B, cc net.Conn, frames [][]byte, n int, got func() int64) {
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	total := int64(b.N)
	go func() {
		w := bufio.NewWriterSize(cc, 64<<10)
		for i := int64(0); i < total; i++ {
			w.Write(frames[i%int64(len(frames))])
		}
		w.Flush()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for got() < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	if got() < total {
		b.Fatalf("received %d of %d", got(), total)
	}
}

// gorillaServer upgrades one connection with compression and hands it
// over; the raw client negotiates permessage-deflate.
func gorillaServer(b *testing.B) (*websocket.Conn, net.Conn, func()) {
	ch := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := websocket.Upgrader{EnableCompression: true, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			b.Error(err)
			return
		}
		c.SetCompressionLevel(1)
		c.SetReadLimit(-1)
		ch <- c
	}))
	cl, err := ws.Dial(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	resp, err := cl.Handshake(ws.Request("/", "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"))
	if err != nil || resp.Header.Get("Sec-WebSocket-Extensions") == "" {
		b.Fatalf("gorilla handshake: %v %v", resp, err)
	}
	cl.SetDeadline(time.Time{})
	gc := <-ch
	return gc, cl.Conn, func() { gc.Close(); cl.Close(); srv.Close() }
}

func benchGorillaSend(b *testing.B, payloads [][]byte) {
	gc, cc, done := gorillaServer(b)
	defer done()
	go io.Copy(io.Discard, cc)
	b.SetBytes(int64(len(payloads[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := gc.WriteMessage(websocket.TextMessage, payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchGorillaReceive(b *testing.B, frames [][]byte, n int) {
	gc, cc, done := gorillaServer(b)
	defer done()
	var count atomic.Int64
	go func() {
		for {
			if _, _, err := gc.ReadMessage(); err != nil {
				return
			}
			count.Add(1)
		}
	}()
	benchReceive(b, cc, frames, n, count.Load)
}
