package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsgate/wsgate/websocket"
)

// upgradeReq is a valid upgrade request for path.
func upgradeReq(path string) *Request {
	r := &Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com", Path: path}
	r.SetHeader(http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"},
	})
	return r
}

type funcHandler struct {
	Base
	connect    func(*Conn) error
	disconnect func(*Conn, websocket.CloseStatus)
}

func (h funcHandler) OnOpen(ctx context.Context, c *Conn) error {
	if h.connect != nil {
		return h.connect(c)
	}
	return nil
}

func (h funcHandler) OnClose(c *Conn, s websocket.CloseStatus) {
	if h.disconnect != nil {
		h.disconnect(c, s)
	}
}

func TestRouteMatching(t *testing.T) {
	g, err := New(quiet, &Route{Path: "/a", Handler: Base{}}, &Route{Path: "/a/", Handler: Base{}}, &Route{Path: "/a/b/", Handler: Base{}}, &Route{Path: "/", Handler: Base{}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"/a": "/a", "/a/": "/a/", "/a/x": "/a/", "/a/b/c": "/a/b/", "/a/b": "/a/", "/other": "/", "/ab": "/"}
	for path, want := range cases {
		if r := g.Route(path); r == nil || r.Path != want {
			t.Errorf("%s -> %v, want %s", path, r, want)
		}
	}
	if _, err := New(nil, &Route{Path: "/a", Handler: Base{}}, &Route{Path: "/a", Handler: Base{}}); err == nil {
		t.Error("duplicate route accepted")
	}
	if _, err := New(nil, &Route{Path: "a", Handler: Base{}}); err == nil {
		t.Error("relative route accepted")
	}
}

func TestAcceptStatuses(t *testing.T) { synctest.Test(t, testAcceptStatuses) }

func testAcceptStatuses(t *testing.T) {
	disconnected := make(chan websocket.CloseStatus, 1)
	routes := []*Route{
		{Path: "/none"},
		{Path: "/teapot", Handler: funcHandler{connect: func(*Conn) error { return Refuse(http.StatusTeapot, "short and stout") }}},
		{Path: "/plain-error", Handler: funcHandler{connect: func(*Conn) error { return errors.New("no") }}},
		{Path: "/panics", Handler: funcHandler{connect: func(*Conn) error { panic("boom") }}},
		{Path: "/bad-header", Handler: funcHandler{
			connect:    func(c *Conn) error { c.ResponseHeader().Set("X-Bad", "a\r\nInjected: yes"); return nil },
			disconnect: func(_ *Conn, s websocket.CloseStatus) { disconnected <- s },
		}},
		{Path: "/ok", Handler: Base{}},
	}
	g, err := New(quiet, routes...)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/none": 500, "/teapot": 418, "/plain-error": 403, "/panics": 500, "/bad-header": 500} {
		_, herr := g.Accept(context.Background(), g.Route(path), upgradeReq(path))
		if herr == nil || herr.Status != want {
			t.Errorf("%s: %v, want %d", path, herr, want)
		}
	}
	select {
	case s := <-disconnected:
		if s.Code != websocket.StatusAbnormalClosure {
			t.Errorf("refused after acceptance: OnClose with %v", s)
		}
	case <-time.After(time.Second):
		t.Error("an application that accepted and was then refused got no OnClose")
	}
	if g.Len() != 0 {
		t.Errorf("%d connections registered after refusals", g.Len())
	}
	p, herr := g.Accept(context.Background(), g.Route("/ok"), upgradeReq("/ok"))
	if herr != nil {
		t.Fatal(herr)
	}
	// Draining: new upgrades get 503, the pending one is closed.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go g.Shutdown(ctx)
	synctest.Wait() // Shutdown has closed what it could and is waiting
	if _, herr := g.Accept(context.Background(), g.Route("/ok"), upgradeReq("/ok")); herr == nil || herr.Status != 503 {
		t.Errorf("during shutdown: %v, want 503", herr)
	}
	if !p.Conn.Engine().Closing() {
		t.Error("shutdown did not close the pending connection")
	}
	p.Abandon()
}

func TestRoomsCleanedUp(t *testing.T) {
	r := &Route{Path: "/r", Handler: funcHandler{connect: func(c *Conn) error { c.Join("lobby"); c.Join("x"); return nil }}}
	g, err := New(quiet, r)
	if err != nil {
		t.Fatal(err)
	}
	p, herr := g.Accept(context.Background(), r, upgradeReq("/r"))
	if herr != nil {
		t.Fatal(herr)
	}
	if got := p.Conn.Rooms(); len(got) != 2 || got[0] != "lobby" {
		t.Fatalf("rooms %v", got)
	}
	p.Abandon()
	if n := r.Hub().RoomLen("lobby") + r.Hub().RoomLen("x") + r.Hub().Len(); n != 0 {
		t.Fatalf("%d memberships left after the connection ended", n)
	}
	p.Conn.Join("late")
	if r.Hub().RoomLen("late") != 0 {
		t.Fatal("a closed connection joined a room")
	}
}

func TestTrustedPeer(t *testing.T) {
	p := Policy{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	for addr, want := range map[string]bool{"10.1.2.3:5": true, "[::1]:80": true, "[::ffff:10.0.0.1]:1": true, "11.0.0.1:5": false, "@": false, "": false} {
		if got := p.trustedPeer(addr); got != want {
			t.Errorf("%q: %v", addr, got)
		}
	}
	p.TrustUnixPeers = true
	if !p.trustedPeer("@") || !p.trustedPeer("") {
		t.Error("unix peers not trusted")
	}
}

func TestSerializeOrigin(t *testing.T) {
	cases := map[[2]string]string{
		{"http", "Example.COM"}: "http://example.com", {"http", "example.com:80"}: "http://example.com",
		{"https", "example.com:443"}: "https://example.com", {"https", "example.com:80"}: "https://example.com:80",
		{"http", "[::1]:8080"}: "http://[::1]:8080", {"http", "[::1]"}: "http://[::1]",
	}
	for in, want := range cases {
		if got := serializeOrigin(in[0], in[1]); got != want {
			t.Errorf("%v: %s, want %s", in, got, want)
		}
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
