// Command echo is a WebSocket-over-HTTP application in Go's standard
// library: the gateway (backend: {http: URL}, or mod_wsgate's
// WebSocketEventHandler http://...) POSTs each WebSocket event here, and
// every message comes back as it came, text as text, binary as binary.
// The benchmark harness measures the HTTP back end with it.
//
//	echo -listen 127.0.0.1:9000
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/wsgate/wsgate/apps/wsoverhttp"
)

func handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	evs, err := wsoverhttp.Parse(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out := make([]byte, 0, len(body)+16)
	for _, ev := range evs {
		switch ev.Type {
		case wsoverhttp.Open, wsoverhttp.Text, wsoverhttp.Binary, wsoverhttp.Close:
			out = wsoverhttp.Append(out, ev.Type, ev.Content)
		}
	}
	w.Header().Set("Content-Type", wsoverhttp.ContentType)
	w.Write(out)
}

func main() {
	addr := flag.String("listen", "127.0.0.1:9000", "`address` to listen on (port 0: any free port)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, http.HandlerFunc(handle)))
}
