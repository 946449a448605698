package main

import (
	"bufio"
	"net"
	"net/http"
	"sync"

	"github.com/lxzan/gws"
)

// gwsServer uses gws's own server (it parses the handshake itself, without
// net/http; its README's "Quick Start" and examples/echo), a ReadLoop per
// connection, OnMessage writing the message back and closing it (as the
// examples do), and its Broadcaster (examples/broadcast), which encodes a
// message once and queues it on each connection asynchronously.
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.WriteMessage(m.Opcode, m.Bytes())
}

type gwsBroadcast struct {
	gws.BuiltinEventHandler
	mu      sync.RWMutex
	members map[*gws.Conn]struct{}
}

func (b *gwsBroadcast) OnOpen(c *gws.Conn) {
	b.mu.Lock()
	b.members[c] = struct{}{}
	b.mu.Unlock()
}

func (b *gwsBroadcast) OnClose(c *gws.Conn, err error) {
	b.mu.Lock()
	delete(b.members, c)
	b.mu.Unlock()
}

func (b *gwsBroadcast) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if m.Opcode != gws.OpcodeText {
		return
	}
	bc := gws.NewBroadcaster(m.Opcode, m.Bytes())
	defer bc.Close()
	b.mu.RLock()
	for o := range b.members {
		bc.Broadcast(o)
	}
	b.mu.RUnlock()
}

func gwsServer(addr string) error {
	opt := func(deflate bool) *gws.ServerOption {
		return &gws.ServerOption{
			Recovery:          gws.Recovery,
			PermessageDeflate: gws.PermessageDeflate{Enabled: deflate},
		}
	}
	echo := gws.NewUpgrader(gwsEcho{}, opt(false))
	echoz := gws.NewUpgrader(gwsEcho{}, opt(true))
	bcast := gws.NewUpgrader(&gwsBroadcast{members: map[*gws.Conn]struct{}{}}, opt(false))
	srv := gws.NewServer(gwsEcho{}, opt(false))
	srv.OnRequest = func(conn net.Conn, br *bufio.Reader, r *http.Request) {
		up := echo
		switch r.URL.Path {
		case "/echo-deflate":
			up = echoz
		case "/broadcast":
			up = bcast
		}
		c, err := up.UpgradeFromConn(conn, br, r)
		if err != nil {
			conn.Close()
			return
		}
		c.ReadLoop()
	}
	return srv.Run(addr)
}
