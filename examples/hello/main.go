// Command hello is a complete wsgate program with its own application,
// written against the Go handler API. It shows what an apache-websocket
// plugin becomes in Go: refuse or accept in OnOpen (with a subprotocol
// and a response header), answer in OnMessage, send from another goroutine,
// clean up in OnClose, and use a room.
//
//	go run ./examples/hello -listen 127.0.0.1:8081
//
// Clients send "name: text"; the first message names them, and every
// message is sent to everyone in the "lobby" room as "[name] text". A
// client that offers the subprotocol "hello.v1" gets it selected. Every
// 10 seconds each client gets a "tick".
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Hello is the application.
type Hello struct{ Tick time.Duration }

type session struct {
	name string
	stop chan struct{}
}

func (h *Hello) OnOpen(ctx context.Context, c *gateway.Conn) error {
	if c.Request().HeaderValue("X-Banned") != "" {
		return gateway.Refuse(403, "banned client")
	}
	if slices.Contains(c.Request().Protocols, "hello.v1") {
		c.SetSubprotocol("hello.v1")
	}
	c.ResponseHeader().Set("X-Hello", "1")
	s := &session{name: fmt.Sprintf("guest%d", c.ID()), stop: make(chan struct{})}
	c.SetState(s)
	c.Join("lobby")
	c.SendText("welcome " + s.name)
	go func() {
		t := time.NewTicker(h.Tick)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				c.SendText("tick")
			}
		}
	}()
	return nil
}

func (h *Hello) OnMessage(c *gateway.Conn, m gateway.Message) {
	if m.Type != websocket.TextMessage {
		c.Close(websocket.StatusUnsupportedData, "text only")
		return
	}
	s := c.State().(*session)
	text := string(m.Data)
	if name, rest, ok := strings.Cut(text, ": "); ok && name != "" {
		s.name, text = name, rest
	}
	c.Hub().SendRoom("lobby", websocket.TextMessage, []byte("["+s.name+"] "+text), nil)
}

func (h *Hello) OnClose(c *gateway.Conn, st websocket.CloseStatus) {
	close(c.State().(*session).stop)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	tick := flag.Duration("tick", 10*time.Second, "interval of the tick message")
	flag.Parse()

	// The routes are written in Go: no configuration file, no registry.
	// A route is a path, an application and its policy; the daemon gives
	// it the same lifecycle as a route read from wsgate.yaml.
	cfg := &config.Config{
		File:      "hello",
		Listeners: []config.Listener{{Network: "tcp", Address: *listen}},
		Routes: []config.Route{{
			Path:    "/hello",
			App:     "hello",
			Handler: &Hello{Tick: *tick},
			Policy:  gateway.Policy{OriginCheck: gateway.OriginOff, IdleTimeout: 10 * time.Minute},
		}},
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := daemon.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err = srv.Listen(); err == nil {
		err = srv.Serve()
	}
	if err != nil {
		srv.Close()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
}
