package backend_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// rawProducer is a producer written against the wire format itself, so it
// can send what the SDKs refuse to: frames over the gateway's limit. It
// accepts every client into room "r" and runs script when a client says
// "go", with its client ids in the order they opened.
type rawProducer struct {
	hello  chan wire.Frame
	links  chan struct{}
	script func(w func([]byte), ids []uint64)
}

func (p *rawProducer) serve(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.links <- struct{}{}
			go p.link(nc)
		}
	}()
	return sock
}

func (p *rawProducer) link(nc net.Conn) {
	defer nc.Close()
	r := wire.NewReader(nc, 64<<10, 64<<20)
	w := func(b []byte) { nc.Write(b) }
	var ids []uint64
	for {
		f, err := r.Next()
		if err != nil {
			return
		}
		switch f.Type {
		case wire.TypeHello:
			p.hello <- f
			w(wire.AppendHelloReply(nil, wire.Version))
		case wire.TypeOpen:
			ids = append(ids, f.Conn)
			w(append(wire.AppendMembership(nil, wire.TypeJoin, f.Conn, "r"), wire.AppendAccept(nil, f.Conn, "", nil)...))
		case wire.TypeMessage:
			if string(f.Payload) == "go" {
				p.script(w, ids)
			}
		}
	}
}

// TestOversizeProducerFrame: a producer frame over the route's limit
// (max_message_size + 64 KiB) closes only the client it addresses, with
// 1009, or is dropped when it is for many; the producer connection and
// every other client carry on, and each event is counted and logged.
// Before, the frame failed the link and closed every client on it with
// 1012 "producer went away".
func TestOversizeProducerFrame(t *testing.T) {
	const limit = 1<<10 + 64<<10 // the frame limit for max_message_size 1 KiB
	big := bytes.Repeat([]byte("x"), limit+100)
	p := &rawProducer{hello: make(chan wire.Frame, 4), links: make(chan struct{}, 16)}
	p.script = func(w func([]byte), ids []uint64) {
		w(wire.AppendMessage(nil, wire.TypeSend, ids[0], wire.KindBinary, big)) // closes A alone
		w(wire.AppendBroadcast(nil, 0, wire.KindBinary, big))                   // dropped
		w(wire.AppendRoom(nil, "r", 0, wire.KindText, big))                     // dropped
		w(wire.AppendMessage(nil, wire.TypeSend, ids[1], wire.KindText, []byte("after")))
		w(wire.AppendBroadcast(nil, 0, wire.KindText, []byte("all")))
	}
	sock := p.serve(t)
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /p, max_message_size: 1KiB, backend: {socket: %s, mode: mux, connections: 1}}\n", sock))
	select {
	case h := <-p.hello:
		if h.MaxFrame != limit {
			t.Fatalf("HELLO says max frame %d, want %d", h.MaxFrame, limit)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no HELLO")
	}
	a, b, c := dial(t, gw.URL("/p")), dial(t, gw.URL("/p")), dial(t, gw.URL("/p"))
	if err := c.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := a.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("A: %v, want close 1009", err)
	}
	testserver.Expect(t, b, websocket.TextMessage, "after")
	testserver.Expect(t, b, websocket.TextMessage, "all")
	testserver.Expect(t, c, websocket.TextMessage, "all")
	if n := len(p.links); n != 1 {
		t.Fatalf("%d producer connections: the link was lost", n)
	}
	m := gw.Metrics(t)
	for name, want := range map[string]float64{
		`wsgate_producer_oversize_frames_total{outcome="client_closed",route="/p"}`: 1,
		`wsgate_producer_oversize_frames_total{outcome="dropped",route="/p"}`:       2,
		`wsgate_producer_reconnects_total{route="/p"}`:                              0,
	} {
		if got := testserver.Sample(m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	a.Close()
	if !testserver.WaitFor(10*time.Second, func() bool {
		return testserver.Sample(gw.Metrics(t), `wsgate_server_closes_total{cause="backend_oversize",code="1009",route="/p"}`) == 1
	}) {
		t.Errorf("the 1009 is not counted with its cause:\n%s", testserver.Grep(gw.Metrics(t), "server_closes"))
	}
	if n := gw.Logs.Count("over the route's size limit"); n != 3 || !strings.Contains(gw.Logs.String(), "frame=ROOM") {
		t.Errorf("%d warnings for 3 oversize frames:\n%s", n, gw.Logs.String())
	}
}

// sizes is oversize_blocking.py as a Go producer.
type sizes struct{ handler }

func (s *sizes) OnMessage(c *producer.Client, _ producer.MessageType, d []byte) {
	var what string
	var n int
	fmt.Sscan(string(d), &what, &n)
	p := bytes.Repeat([]byte("x"), n)
	var err error
	if what == "send" {
		err = c.Send(producer.Text, p)
	} else {
		err = c.Broadcast(producer.Text, p, false)
	}
	if errors.Is(err, producer.ErrTooLarge) {
		c.SendText("refused")
	}
}

// TestOversizeSDKs: every producer SDK refuses a send over the route's
// limit, which it learns from the gateway's HELLO, before writing
// anything; the client stays open and the next send goes through. Each
// producer is written in its SDK's own style (testdata).
func TestOversizeSDKs(t *testing.T) {
	dir := t.TempDir()
	sdk, _ := filepath.Abs("../../sdk/python")
	phpSDK, _ := filepath.Abs("../../sdk/php/apachews.php")
	py := testserver.Python(t)
	run := func(name string, args ...string) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+sdk)
		cmd.Stderr = os.Stderr
		testserver.RunProducer(t, cmd, filepath.Join(dir, name))
	}
	run("blocking", py, "testdata/oversize_blocking.py", filepath.Join(dir, "blocking"))
	run("aio", py, "testdata/oversize_aio.py", filepath.Join(dir, "aio"))
	run("php", testserver.Peer(t, "php-cli", "php"), "-d", "auto_prepend_file="+phpSDK, "testdata/oversize.php", filepath.Join(dir, "php"))
	goSock := serveProducer(t, &sizes{})
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
defaults: {max_message_size: 1KiB}
routes:
  - {path: /go, backend: {socket: %s, mode: mux}}
  - {path: /blocking, backend: {socket: %s/blocking, mode: mux}}
  - {path: /aio, backend: {socket: %s/aio, mode: per-client}}
  - {path: /php, backend: {socket: %s/php, mode: mux}}
`, goSock, dir, dir, dir))
	const limit = 1<<10 + 64<<10
	for _, route := range []string{"/go", "/blocking", "/aio", "/php"} {
		t.Run(route, func(t *testing.T) {
			c := dial(t, gw.URL(route))
			c.SetReadLimit(-1)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for _, step := range []struct {
				say  string
				want string
			}{
				{fmt.Sprintf("send %d", limit), "refused"},
				{fmt.Sprintf("broadcast %d", limit), "refused"},
				{"send 1000", strings.Repeat("x", 1000)},
				{fmt.Sprintf("send %d", limit-10), strings.Repeat("x", limit-10)}, // the largest that fits
				{"broadcast 5", "xxxxx"},
			} {
				if err := c.WriteMessage(websocket.TextMessage, []byte(step.say)); err != nil {
					t.Fatal(err)
				}
				testserver.Expect(t, c, websocket.TextMessage, step.want)
			}
		})
	}
	m := gw.Metrics(t)
	if n := testserver.Sample(m, `wsgate_producer_oversize_frames_total{outcome="client_closed",route="/blocking"}`); n != 0 {
		t.Errorf("the gateway saw %v oversize frames: the SDK wrote them", n)
	}
}

// TestResumedOpenUnanswered: a client that sends as its producer's
// connection breaks is held, and a producer that never answers its
// resumed OPEN (it crashed in the middle of a handover, or lost it) does
// not keep it held until its hold runs out while links are up: after
// open_timeout the client is announced again, and resumed when a producer
// answers. Before, the send that found the connection broken failed the
// link under the client's own lock, which failing the link takes too: the
// client's reader and the link's failure waited for each other, and the
// pool never reconnected. And an unanswered resumed OPEN left its client
// held for the whole hold, then closed with 1012.
func TestResumedOpenUnanswered(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var resumedSeen atomic.Int32
	links := make(chan net.Conn, 8)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			links <- nc
			go func() {
				defer nc.Close()
				r := wire.NewReader(nc, 64<<10, 64<<20)
				for {
					f, err := r.Next()
					if err != nil {
						return
					}
					switch {
					case f.Type == wire.TypeHello:
						nc.Write(wire.AppendHelloReply(nil, wire.Version))
					case f.Type == wire.TypeOpen && f.Resumed && resumedSeen.Add(1) == 1:
						// The first resumed OPEN is lost.
					case f.Type == wire.TypeOpen:
						nc.Write(wire.AppendAccept(nil, f.Conn, "", nil))
					case f.Type == wire.TypeMessage:
						nc.Write(wire.AppendMessage(nil, wire.TypeSend, f.Conn, f.Kind, f.Payload))
					}
				}
			}()
		}
	}()
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /p, backend: {socket: %s, mode: mux, connections: 1, hold: 20s, open_timeout: 500ms}}\n", sock))
	c := dial(t, gw.URL("/p"))
	c.WriteMessage(websocket.TextMessage, []byte("before"))
	testserver.Expect(t, c, websocket.TextMessage, "before")
	(<-links).Close() // the producer's connection drops: the client is held
	c.WriteMessage(websocket.TextMessage, []byte("while held"))
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	testserver.Expect(t, c, websocket.TextMessage, "while held")
	if n := resumedSeen.Load(); n < 2 {
		t.Fatalf("%d resumed OPENs: the unanswered one was not sent again", n)
	}
	if l := gw.Link("/p"); l.Held != 0 || l.HoldExpired != 0 || l.Resumed != 1 {
		t.Fatalf("counters: %+v", l)
	}
}
