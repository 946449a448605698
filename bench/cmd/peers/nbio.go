package main

import (
	"net/http"
	"sync"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// nbioServer runs nbhttp in its default non-blocking mode, as the
// examples in lesismal/nbio-examples (websocket/server) do: connections
// are served by epoll pollers, with no goroutine per connection, which is
// what gives nbio its small idle footprint; OnMessage writes the message
// back; payloads are released after each OnMessage
// (ReleaseWebsocketPayload), as those examples set.
func nbioServer(addr string) error {
	newUp := func(deflate bool) *websocket.Upgrader {
		u := websocket.NewUpgrader()
		u.CheckOrigin = anyOrigin
		u.EnableCompression(deflate)
		u.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
			c.WriteMessage(mt, data)
		})
		return u
	}
	echo, echoz := newUp(false), newUp(true)
	var mu sync.RWMutex
	members := map[*websocket.Conn]struct{}{}
	bcast := websocket.NewUpgrader()
	bcast.CheckOrigin = anyOrigin
	bcast.OnOpen(func(c *websocket.Conn) {
		mu.Lock()
		members[c] = struct{}{}
		mu.Unlock()
	})
	bcast.OnClose(func(c *websocket.Conn, err error) {
		mu.Lock()
		delete(members, c)
		mu.Unlock()
	})
	bcast.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		if mt != websocket.TextMessage {
			return
		}
		mu.RLock()
		for o := range members {
			o.WriteMessage(mt, data)
		}
		mu.RUnlock()
	})
	mux := http.NewServeMux()
	handle := func(path string, u *websocket.Upgrader) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			u.Upgrade(w, r, nil)
		})
	}
	handle("/echo", echo)
	handle("/echo-deflate", echoz)
	handle("/broadcast", bcast)
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 mux,
		MaxLoad:                 1 << 20,
		ReleaseWebsocketPayload: true,
	})
	if err := engine.Start(); err != nil {
		return err
	}
	select {}
}
