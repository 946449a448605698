package wsoverhttp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/wsoverhttp"
	"github.com/wsgate/wsgate/testkit/testserver"
	"github.com/wsgate/wsgate/testkit/wstest"
)

// pushpinApp is a WebSocket-over-HTTP application written the way
// Pushpin's users write them, with the standard library only: it checks
// the content type, accepts OPEN with GRIP and a subscription, echoes
// text, keeps a nickname in connection metadata, publishes to the room
// through the gateway's publish endpoint, and answers CLOSE with CLOSE.
type pushpinApp struct {
	publish string // the gateway's publish URL
	token   string // the admin listener's bearer token

	mu       sync.Mutex
	requests []http.Header // headers of every request, in order
	bodies   []string
}

func (a *pushpinApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.requests = append(a.requests, r.Header.Clone())
	a.bodies = append(a.bodies, string(body))
	a.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != wsoverhttp.ContentType {
		http.Error(w, "not websocket-events", http.StatusBadRequest)
		return
	}
	evs, err := wsoverhttp.Parse(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out []byte
	w.Header().Set("Content-Type", wsoverhttp.ContentType)
	for _, ev := range evs {
		switch ev.Type {
		case wsoverhttp.Open:
			switch r.URL.Query().Get("do") {
			case "refuse":
				http.Error(w, "go away", http.StatusForbidden)
				return
			case "stall":
				time.Sleep(3 * time.Second)
			}
			w.Header().Set("Sec-WebSocket-Extensions", "grip")
			w.Header().Set("Sec-WebSocket-Protocol", "chat.v1")
			w.Header().Set("Keep-Alive-Interval", "1")
			out = wsoverhttp.Append(out, wsoverhttp.Open, nil)
			out = wsoverhttp.Append(out, wsoverhttp.Text, []byte(`c:{"type":"subscribe","channel":"lobby"}`))
			out = wsoverhttp.Append(out, wsoverhttp.Text, []byte("m:welcome"))
		case wsoverhttp.Text:
			text := string(ev.Content)
			switch {
			case strings.HasPrefix(text, "/nick "):
				w.Header().Set("Set-Meta-Nick", text[6:])
				out = wsoverhttp.Append(out, wsoverhttp.Text, []byte("m:ok"))
			case text == "/who":
				out = wsoverhttp.Append(out, wsoverhttp.Text, []byte("m:"+r.Header.Get("Meta-Nick")))
			case strings.HasPrefix(text, "/say "):
				msg, _ := json.Marshal(map[string]any{"items": []any{map[string]any{"channel": "lobby",
					"formats": map[string]any{"ws-message": map[string]string{"content": r.Header.Get("Meta-Nick") + ": " + text[5:]}}}}})
				resp, err := publishAs(a.publish, a.token, bytes.NewReader(msg))
				if err != nil || resp.StatusCode != 200 {
					http.Error(w, fmt.Sprint("publish: ", err), 500)
					return
				}
				resp.Body.Close()
			case text == "/fail":
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			case text == "/bye":
				out = wsoverhttp.Append(out, wsoverhttp.Close, wsoverhttp.CloseContent(4001, "bye"))
			default:
				out = wsoverhttp.Append(out, wsoverhttp.Text, append([]byte("m:"), ev.Content...))
			}
		case wsoverhttp.Binary:
			out = wsoverhttp.Append(out, wsoverhttp.Binary, ev.Content)
		case wsoverhttp.Close:
			out = wsoverhttp.Append(out, wsoverhttp.Close, ev.Content)
		}
	}
	w.Write(out)
}

func (a *pushpinApp) seen() ([]http.Header, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.requests...), append([]string(nil), a.bodies...)
}

// startApp serves app on loopback until the test ends.
func startApp(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestPushpinApplication(t *testing.T) {
	// The admin listener is opened here: the application is told where
	// to publish before the daemon starts.
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := adminLn.Addr().String()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	const token = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	os.WriteFile(tokenFile, []byte(token), 0o600)
	app := &pushpinApp{publish: "http://" + admin + "/publish/", token: token}
	base := startApp(t, app)
	gw := testserver.StartWith(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
admin: {listen: %s, auth: {bearer_token_file: %s, public_reads: true}}
routes:
  - {path: /chat, backend: {http: %s, timeout: 2s}}
  - {path: /fixed, backend: {http: %s/events/here}}
`, admin, tokenFile, base, base), adminLn)
	dial := func(path string) *websocket.Conn {
		c, resp := testserver.Dial(t, gw.URL(path), http.Header{"Origin": {"http://" + gw.Addr}, "Cookie": {"sid=1"}}, "chat.v1")
		if resp.Header.Get("Sec-WebSocket-Protocol") != "chat.v1" {
			t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
		}
		testserver.Expect(t, c, websocket.TextMessage, "welcome")
		return c
	}

	t.Run("echo and order", func(t *testing.T) {
		c := dial("/chat?room=1")
		for i := range 50 {
			c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "m%d", i))
		}
		c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2})
		for i := range 50 {
			testserver.Expect(t, c, websocket.TextMessage, fmt.Sprintf("m%d", i))
		}
		testserver.Expect(t, c, websocket.BinaryMessage, "\x00\x01\x02")
	})

	t.Run("requests as pushpin makes them", func(t *testing.T) {
		hs, bodies := app.seen()
		h := hs[0]
		if h.Get("Connection-Id") == "" || h.Get("Accept") != wsoverhttp.ContentType || h.Get("Cookie") != "sid=1" ||
			h.Get("Sec-WebSocket-Protocol") != "chat.v1" || h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("Sec-WebSocket-Key") != "" {
			t.Fatalf("first request's headers: %v", h)
		}
		if bodies[0] != "OPEN\r\n" {
			t.Fatalf("first body %q", bodies[0])
		}
		// Events that arrive while a request is out are batched.
		batched := false
		for _, b := range bodies {
			batched = batched || strings.Count(b, "TEXT ") > 1
		}
		if !batched {
			t.Errorf("50 quick messages went in %d requests, none batched", len(bodies))
		}
	})

	t.Run("meta", func(t *testing.T) {
		c := dial("/chat")
		c.WriteMessage(websocket.TextMessage, []byte("/nick ann"))
		testserver.Expect(t, c, websocket.TextMessage, "ok")
		c.WriteMessage(websocket.TextMessage, []byte("/who"))
		testserver.Expect(t, c, websocket.TextMessage, "ann")
	})

	t.Run("publish to subscribers", func(t *testing.T) {
		a, b := dial("/chat"), dial("/fixed")
		a.WriteMessage(websocket.TextMessage, []byte("/nick bo"))
		testserver.Expect(t, a, websocket.TextMessage, "ok")
		a.WriteMessage(websocket.TextMessage, []byte("/say hi all"))
		testserver.Expect(t, a, websocket.TextMessage, "bo: hi all")
		testserver.Expect(t, b, websocket.TextMessage, "bo: hi all")
		// From any HTTP client, binary too.
		resp, err := publishAs("http://"+admin+"/publish/", token,
			strings.NewReader(`{"items":[{"channel":"lobby","formats":{"ws-message":{"content-bin":"AAE="}}}]}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("publish: %v %v", err, resp)
		}
		testserver.Expect(t, b, websocket.BinaryMessage, "\x00\x01")
		resp, _ = publishAs("http://"+admin+"/publish/", token, strings.NewReader(`{"items":[{}]}`))
		if resp.StatusCode != 400 {
			t.Fatalf("bad publish: %d", resp.StatusCode)
		}
	})

	t.Run("close from the application", func(t *testing.T) {
		c := dial("/chat")
		c.WriteMessage(websocket.TextMessage, []byte("/bye"))
		_, _, err := c.ReadMessage()
		if !websocket.IsCloseError(err, 4001) {
			t.Fatalf("%v, want 4001", err)
		}
	})

	t.Run("client close reaches the application", func(t *testing.T) {
		c := dial("/chat")
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "done"))
		c.ReadMessage()
		if !testserver.WaitFor(5*time.Second, func() bool {
			_, bodies := app.seen()
			for _, b := range bodies {
				if strings.Contains(b, "CLOSE 6\r\n\x10\xe1done") {
					return true
				}
			}
			return false
		}) {
			t.Fatal("no CLOSE event with the client's code")
		}
	})

	t.Run("keep-alive requests", func(t *testing.T) {
		c := dial("/chat")
		_, before := app.seen()
		// Keep-Alive-Interval: 1 asks for an empty request each second
		// while the connection is quiet.
		if !testserver.WaitFor(30*time.Second, func() bool {
			_, after := app.seen()
			for _, b := range after[len(before):] {
				if b == "" {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no keep-alive request")
		}
		c.Close()
	})

	t.Run("application error closes with 1011", func(t *testing.T) {
		c := dial("/chat")
		other := dial("/chat")
		c.WriteMessage(websocket.TextMessage, []byte("/fail"))
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 1011) {
			t.Fatalf("%v, want 1011", err)
		}
		other.WriteMessage(websocket.TextMessage, []byte("still"))
		testserver.Expect(t, other, websocket.TextMessage, "still")
	})

	t.Run("refused and timed out opens", func(t *testing.T) {
		if got := wstest.Status(gw.URL("/chat?do=refuse")); got != 403 {
			t.Fatalf("refused OPEN: %d", got)
		}
		if got := wstest.Status(gw.URL("/chat?do=stall")); got != 504 {
			t.Fatalf("stalled OPEN: %d", got)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if testserver.Sample(string(text), `wsgate_events_requests_total{result="ok",route="/chat"}`) < 10 ||
			testserver.Sample(string(text), `wsgate_events_requests_total{result="error",route="/chat"}`) < 1 {
			t.Fatalf("events metrics:\n%s", testserver.Grep(string(text), "events_requests"))
		}
		testserver.Promtool(t, string(text))
	})
}

// TestApplicationDown: an application that cannot be reached refuses new
// clients with 502, and one that goes away closes its clients with 1011.
func TestApplicationDown(t *testing.T) {
	addr := testserver.RefusingAddr(t)
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /e, backend: {http: http://%s/}}\n", addr))
	if got := wstest.Status(gw.URL("/e")); got != 502 {
		t.Fatalf("unreachable application: %d, want 502", got)
	}
}

// publishAs posts to the publish API with the admin listener's token.
func publishAs(url, token string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest("POST", url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}
