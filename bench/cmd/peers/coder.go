package main

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// coderServer streams each message through Reader/Writer with io.Copy, as
// coder's echo example does; its Write is safe for concurrent use, so the
// broadcast loop writes to each member directly.
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
				typ, rd, err := c.Reader(ctx)
				if err != nil {
					return
				}
				wr, err := c.Writer(ctx, typ)
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
