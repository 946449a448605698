package apachetest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestWebSocketUpstream: mod_wsgate's WebSocketUpstream proxies a
// location to a WebSocket server with the daemon's semantics: messages
// relayed whole, the upstream's close code carried to the client, its
// refusal passed on, under event and prefork.
func TestWebSocketUpstream(t *testing.T) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(p) == "/bye" {
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4003, "upstream says bye"))
				continue
			}
			c.WriteMessage(typ, append([]byte("up:"), p...))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, mpm := range []string{"event", "prefork"} {
		t.Run(mpm, func(t *testing.T) {
			h := start(t, options{MPM: mpm, Body: `
<Location /up>
  SetHandler websocket-handler
  WebSocketUpstream ws://` + addr + `/echo
</Location>
<Location /refused>
  SetHandler websocket-handler
  WebSocketUpstream ws://` + addr + `/refuse
</Location>
`})
			base := "ws://" + h.Addr()
			c, _ := dialOK(t, base+"/up", nil)
			for _, n := range []int{1, 200, 70000} {
				msg := strings.Repeat("m", n)
				c.WriteMessage(websocket.TextMessage, []byte(msg))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, p, err := c.ReadMessage(); err != nil || string(p) != "up:"+msg {
					t.Fatalf("%d bytes: got %d bytes %v", n, len(p), err)
				}
			}
			c.WriteMessage(websocket.TextMessage, []byte("/bye"))
			if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 4003) {
				t.Errorf("the upstream's close: %v", err)
			}
			if got := ws.Status(base + "/refused"); got != 401 {
				t.Errorf("the upstream's refusal: %d, want 401", got)
			}
		})
	}
}
