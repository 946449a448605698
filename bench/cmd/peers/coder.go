package main

import (
	"context"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// coderServer echoes with Conn.Read and Conn.Write, which coder's
// documentation gives for messages that fit in memory ("Use Read and
// Write for simple use cases", README and the Conn.Read doc): one frame
// per message. (Its streaming echo example, internal/examples/echo,
// copies a Reader into a Writer, which ends each message with an extra
// empty frame: not the fast path.) Write is safe for concurrent use, so
// the broadcast loop writes to each member directly.
func coderServer(addr string) error {
	echo := func(mode websocket.CompressionMode) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: mode})
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			ctx := context.Background()
			for {
				typ, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				if err := c.Write(ctx, typ, data); err != nil {
					return
				}
			}
		}
	}
	var mu sync.RWMutex
	members := map[*websocket.Conn]struct{}{}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echo(websocket.CompressionDisabled))
	mux.HandleFunc("/echo-deflate", echo(websocket.CompressionNoContextTakeover))
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		mu.Lock()
		members[c] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(members, c)
			mu.Unlock()
			c.CloseNow()
		}()
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				continue
			}
			mu.RLock()
			for o := range members {
				o.Write(ctx, typ, data)
			}
			mu.RUnlock()
		}
	})
	return http.ListenAndServe(addr, mux)
}
