package main

import (
	"io"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// gorillaServer follows gorilla's own guidance: NextReader/NextWriter with
// io.Copy (its autobahn server), a shared write buffer pool so that idle
// connections hold no write buffer, and PreparedMessage for broadcast with
// one mutex per connection (gorilla allows one concurrent writer).
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
				op, rd, err := c.NextReader()
				if err != nil {
					return
				}
				wr, err := c.NextWriter(op)
				if err != nil {
					return
				}
				if _, err := io.Copy(wr, rd); err != nil {
					return
				}
				if err := wr.Close(); err != nil {
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
