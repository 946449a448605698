package backend_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pending reports whether a connection is waiting in ln's backlog, without
// waiting for one.
func pending(t *testing.T, ln *net.UnixListener) bool {
	t.Helper()
	ln.SetDeadline(time.Now())
	c, err := ln.Accept()
	ln.SetDeadline(time.Time{})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestCheckConnectsNothing: building a gateway from a configuration (what
// `wsgate check` and daemon.New do) provisions and validates the producer
// route but dials nothing, even with the producer listening; Start does.
func TestCheckConnectsNothing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg, err := config.Parse("c.yaml", []byte(fmt.Sprintf("routes:\n  - {path: /p, backend: {socket: %s}}\n", sock)))
	if err != nil {
		t.Fatal(err)
	}
	g, err := cfg.NewGateway(quiet)
	if err != nil {
		t.Fatal(err)
	}
	if pending(t, ln) {
		t.Fatal("provisioning the route connected to the producer")
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Start did not connect to the producer: %v", err)
	}
	c.Close()
	g.Stop(context.Background())
}

// TestHandBuiltBackend: a Backend built in Go, without a configuration
// file, goes through the same lifecycle as one from wsgate.yaml, so it
// knows its route: a producer's BROADCAST reaches the route's clients.
func TestHandBuiltBackend(t *testing.T) {
	sock := serveProducer(t, &handler{message: func(c *producer.Client, _ producer.MessageType, d []byte) {
		c.Broadcast(producer.Text, append([]byte("to everyone: "), d...), false)
	}})
	b, err := backend.New(backend.Config{Address: sock})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := daemon.New(&config.Config{
		File:      "go",
		Listeners: []config.Listener{{Network: "tcp", Address: "127.0.0.1:0"}},
		Routes:    []config.Route{{Path: "/p", App: "producer", Handler: b, Policy: gateway.Policy{OriginCheck: gateway.OriginOff}}},
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) }) // after the client's own cleanup
	c := dial(t, "ws://"+srv.Addrs()[0].String()+"/p")
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "to everyone: hi" {
		t.Fatalf("broadcast: %q %v", p, err)
	}
}

// TestRawSplitCharacter: a raw text program that writes a character in two
// writes (here, é as 0xC3 then 0xA9) has it delivered whole: the incomplete
// sequence at the end of a read waits for the next read instead of failing
// the client with 1011.
func TestRawSplitCharacter(t *testing.T) {
	next := make(chan struct{})
	sock := rawServer(t, func(c net.Conn) {
		c.Write([]byte("caf\xc3"))
		<-next
		c.Write([]byte("\xa9!"))
	})
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /raw, backend: {socket: %s, protocol: raw}}\n", sock))
	c := dial(t, gw.URL("/raw"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil || string(p) != "caf" {
		t.Fatalf("first read: %q %v", p, err)
	}
	close(next)
	if _, p, err = c.ReadMessage(); err != nil || string(p) != "é!" {
		t.Fatalf("second read: %q %v", p, err)
	}
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 1000) {
		t.Fatalf("after the program closed: %v", err)
	}
}
