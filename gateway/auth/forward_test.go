package auth_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// authService is a forward-auth service as Authelia or oauth2-proxy
// answer: the session cookie decides, the user comes back in Remote-User.
type authService struct {
	asked atomic.Int64
	mu    sync.Mutex
	seen  http.Header // the last question's headers
}

func (a *authService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.asked.Add(1)
	a.mu.Lock()
	a.seen = r.Header.Clone()
	a.mu.Unlock()
	ck, _ := r.Cookie("session")
	switch {
	case ck == nil:
		w.Header().Set("WWW-Authenticate", `Basic realm="sso"`)
		w.WriteHeader(http.StatusUnauthorized)
	case ck.Value == "carol":
		w.Header().Set("Remote-User", "carol")
		w.Header().Set("Remote-Groups", "admins,chat")
		w.WriteHeader(http.StatusOK)
	case ck.Value == "banned":
		w.WriteHeader(http.StatusForbidden)
	case ck.Value == "slow":
		time.Sleep(2 * time.Second)
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func TestForwardAuth(t *testing.T) {
	svc := &authService{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: svc}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - path: /who
    auth:
      forward: {url: "http://%s/check", copy_headers: [Remote-Groups], timeout: 500ms}
    %s
  - path: /cached
    auth:
      forward: {url: "http://%[1]s/check", cache: {ttl: 1m, size: 2}}
    %[2]s
  - path: /down
    auth:
      forward: {url: "http://%s/check"}
    %[2]s
`, ln.Addr(), who, testserver.RefusingAddr(t)))

	for _, tc := range []struct {
		name, path, cookie string
		status             int
		want               string // first message, or WWW-Authenticate
	}{
		{"allowed", "/who", "carol", 101, "carol|Forward||"},
		{"no session: the service's 401 and challenge", "/who", "", 401, `Basic realm="sso"`},
		{"forbidden", "/who", "banned", 403, ""},
		{"the service fails", "/who", "broken", 503, ""},
		{"the service is slow", "/who", "slow", 503, ""},
		{"the service is down", "/down", "carol", 503, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.cookie != "" {
				h.Set("Cookie", "session="+tc.cookie)
			}
			c, resp, err := websocket.DefaultDialer.Dial(gw.URL(tc.path)+"?room=1", h)
			if err != nil {
				if resp == nil || resp.StatusCode != tc.status || resp.Header.Get("WWW-Authenticate") != tc.want {
					t.Fatalf("got %v %v, want %d %q", err, resp, tc.status, tc.want)
				}
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, p, err := c.ReadMessage()
			if tc.status != 101 || err != nil || strings.TrimSpace(string(p)) != tc.want {
				t.Fatalf("got 101 %q %v, want %d %q", p, err, tc.status, tc.want)
			}
		})
	}
	svc.mu.Lock()
	seen := svc.seen
	svc.mu.Unlock()
	if seen.Get("X-Forwarded-Uri") != "/who?room=1" || seen.Get("X-Forwarded-Method") != "GET" || seen.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("the service was told %v", seen)
	}
	// The cache: one question for three identical clients; past its size
	// the oldest answer goes.
	before := svc.asked.Load()
	for range 3 {
		c, _ := testserver.Dial(t, gw.URL("/cached"), http.Header{"Cookie": {"session=carol"}})
		c.Close()
	}
	if n := svc.asked.Load() - before; n != 1 {
		t.Errorf("three identical clients asked the service %d times, want 1", n)
	}
	m := gw.Metrics(t)
	for result, want := range map[string]float64{"allowed": 2, "denied": 2, "cached": 2} {
		if n := testserver.Sample(m, fmt.Sprintf(`wsgate_auth_forward_requests_total{result="%s"}`, result)); n < want {
			t.Errorf("forward %s: %v, want at least %v", result, n, want)
		}
	}
	if n := testserver.Sample(m, `wsgate_auth_forward_duration_seconds_count`); n < 5 {
		t.Errorf("forward latency count: %v", n)
	}
	for cause, status := range map[string]int{"auth_invalid": 401, "auth_forbidden": 403} {
		if n := testserver.Sample(m, fmt.Sprintf(`wsgate_handshakes_refused_total{cause="%s",route="/who",status="%d"}`, cause, status)); n != 1 {
			t.Errorf("%s: %v", cause, n)
		}
	}
	if n := testserver.Sample(m, `wsgate_handshakes_refused_total{cause="auth_unavailable",route="/who",status="503"}`); n != 2 {
		t.Errorf("auth_unavailable on /who: %v, want 2", n)
	}
}
