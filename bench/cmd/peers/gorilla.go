package main

import (
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// gorillaServer follows gorilla's own guidance: ReadMessage and
// WriteMessage, as its echo example does (examples/echo/server.go), which
// send each message as one frame (NextWriter with io.Copy, its autobahn
// server's streaming echo, flushes a frame per write buffer: 17 frames for
// 64 KiB); a shared write buffer pool so that idle connections hold no
// write buffer (the Upgrader's WriteBufferPool doc); and PreparedMessage
// for broadcast with one mutex per connection (gorilla allows one
// concurrent writer).
func gorillaServer(addr string) error {
	pool := &sync.Pool{}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, WriteBufferPool: pool, CheckOrigin: anyOrigin}
	upz := up
	upz.EnableCompression = true
	echo := func(up *websocket.Upgrader) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				op, data, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(op, data); err != nil {
					return
				}
			}
		}
	}
	type member struct {
		mu sync.Mutex
		c  *websocket.Conn
	}
	var mu sync.RWMutex
	members := map[*member]struct{}{}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echo(&up))
	mux.HandleFunc("/echo-deflate", echo(&upz))
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		m := &member{c: c}
		mu.Lock()
		members[m] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(members, m)
			mu.Unlock()
			c.Close()
		}()
		for {
			op, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			if op != websocket.TextMessage {
				continue
			}
			pm, err := websocket.NewPreparedMessage(op, data)
			if err != nil {
				return
			}
			mu.RLock()
			for o := range members {
				o.mu.Lock()
				o.c.WritePreparedMessage(pm)
				o.mu.Unlock()
			}
			mu.RUnlock()
		}
	})
	return http.ListenAndServe(addr, mux)
}
