package auth_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/wsoverhttp"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// whoProducer answers every message with who the gateway said the
// client is.
type whoProducer struct{}

func (whoProducer) OnOpen(*producer.Client, *producer.Accept) error { return nil }
func (whoProducer) OnMessage(c *producer.Client, _ producer.MessageType, _ []byte) {
	c.Send(producer.Text, []byte(fmt.Sprintf("%s|%s|%v", c.User, c.AuthType, c.Claims()["scope"])))
}
func (whoProducer) OnClose(*producer.Client, uint16, string) {}

// whoEvents is a WebSocket-over-HTTP application that answers every
// message with the Meta-User and Meta-Auth-Type it was given.
func whoEvents(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	evs, err := wsoverhttp.Parse(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", wsoverhttp.ContentType)
	var out []byte
	for _, ev := range evs {
		switch ev.Type {
		case wsoverhttp.Open:
			out = wsoverhttp.Append(out, wsoverhttp.Open, nil)
		case wsoverhttp.Text:
			out = wsoverhttp.Append(out, wsoverhttp.Text, []byte(r.Header.Get("Meta-User")+"|"+r.Header.Get("Meta-Auth-Type")))
		}
	}
	w.Write(out)
}

// TestIdentityReachesBackEnds: the identity a token proves reaches a
// producer (Go SDK: OPEN's Meta-User), an HTTP application (Meta-User),
// and a program (REMOTE_USER, AUTH_TYPE) the same way; a client that
// sends Meta-User itself is not believed. HS256 with a secret file.
func TestIdentityReachesBackEnds(t *testing.T) {
	is := startIssuer(t, 300)
	secret := filepath.Join(is.dir, "hs.key")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef-a-shared-secret\n"), 0o600)
	sock := filepath.Join(t.TempDir(), "who.sock")
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ps := &producer.Server{Handler: whoProducer{}}
	go ps.Serve(ln)
	t.Cleanup(func() { ps.Shutdown(context.Background()) })
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(whoEvents)}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })

	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
defaults:
  auth: {jwt: {algorithms: [HS256], secret_file: %s}}
routes:
  - {path: /producer, backend: {socket: %s}}
  - {path: /events, backend: {http: http://%s/}}
  - path: /program
    %s
  - {path: /open, app: echo, auth: off}
`, secret, sock, hl.Addr(), who))
	tok := is.sign("hs", "HS256", "", `{"sub":"bob","scope":"chat","exp":"+300"}`)
	h := http.Header{"Authorization": {"Bearer " + tok}, "Meta-User": {"mallory"}, "Meta-Auth-Type": {"Forged"}}
	for path, want := range map[string]string{"/producer": "bob|Bearer|chat", "/events": "bob|Bearer", "/program": "bob|Bearer||"} {
		c, _ := testserver.Dial(t, gw.URL(path), h)
		c.WriteMessage(websocket.TextMessage, []byte("who"))
		testserver.Expect(t, c, websocket.TextMessage, want)
	}
	// auth: off on one route turns the defaults' off.
	c, _ := testserver.Dial(t, gw.URL("/open"), nil)
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	testserver.Expect(t, c, websocket.TextMessage, "hi")
	// Without the token, none of them is asked.
	for _, path := range []string{"/producer", "/events", "/program"} {
		if _, resp, err := websocket.DefaultDialer.Dial(gw.URL(path), nil); err == nil || resp.StatusCode != 401 {
			t.Errorf("%s without a token: %v %v", path, err, resp)
		}
	}
}

// TestClosedAtExpiry: a client whose token expires while it is connected
// is closed then with 1008 "token expired", counted with cause
// auth_expired.
func TestClosedAtExpiry(t *testing.T) {
	is := startIssuer(t, 300)
	is.key("r1", "RSA", true)
	gw := testserver.Start(t, jwtConfig(is))
	tok := is.sign("r1", "RS256", "r1", strings.Replace(good, `"+300"`, `"+3"`, 1))
	c, _ := testserver.Dial(t, gw.URL("/who"), http.Header{"Authorization": {"Bearer " + tok}})
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, p, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(p), "alice|") {
		t.Fatalf("%q %v", p, err)
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errorsAs(err, &ce) || ce.Code != 1008 || ce.Text != "token expired" {
		t.Fatalf("got %v, want a close 1008 token expired", err)
	}
	var m string
	if !testserver.WaitFor(5*time.Second, func() bool {
		m = gw.Metrics(t)
		return testserver.Sample(m, `wsgate_server_closes_total{cause="auth_expired",code="1008",route="/who"}`) == 1
	}) {
		t.Errorf("no server close counted for auth_expired\n%s", testserver.Grep(m, "server_closes"))
	}
	if n := gw.Logs.Count("cause=auth_expired"); n != 1 {
		t.Errorf("%d log lines for the close\n%s", n, gw.Logs)
	}
}

func errorsAs(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	*ce = e
	return ok
}

// TestJWKSRotation: a key the issuer rotates in is fetched when a token
// first names it; the key rotated out stops working with that fetch.
// Tokens with made-up kids fetch at most once per jwks_min_refresh; when
// the issuer is gone, the keys fetched before keep serving; when it was
// never reached, clients get 503.
func TestJWKSRotation(t *testing.T) {
	is := startIssuer(t, 300)
	is.key("r1", "RSA", true)
	is.key("r2", "RSA", false)
	gw := testserver.Start(t, jwtConfig(is))
	base := gw.URL("/who")
	if st, _, _ := attempt(t, base, "header", is.sign("r1", "RS256", "r1", good)); st != 101 {
		t.Fatalf("r1 before the rotation: %d", st)
	}
	is.publish("r2")
	is.withdraw("r1")
	time.Sleep(1100 * time.Millisecond) // jwks_min_refresh since the first fetch
	if st, ch, _ := attempt(t, base, "header", is.sign("r2", "RS256", "r2", good)); st != 101 {
		t.Fatalf("r2 after the rotation: %d %s", st, ch)
	}
	if st, _, _ := attempt(t, base, "header", is.sign("r1", "RS256", "r1", good)); st != 401 {
		t.Errorf("r1 after the rotation: %d, want 401", st)
	}
	r2 := is.sign("r2", "RS256", "r2", good)
	var bogus []string
	for i := range 20 {
		bogus = append(bogus, is.sign("r2", "RS256", fmt.Sprint("made-up-", i), good))
	}
	before, start := is.fetches(), time.Now()
	for _, tok := range bogus {
		if st, _, _ := attempt(t, base, "header", tok); st != 401 {
			t.Fatalf("made-up kid: %d", st)
		}
	}
	after, took := is.fetches(), time.Since(start)
	t.Logf("JWKS fetches: %s before 20 made-up kids, %s after, in %v", before, after, took)
	var b, a int
	fmt.Sscan(before, &b)
	fmt.Sscan(after, &a)
	if allowed := int(took/time.Second) + 1; a-b > allowed {
		t.Errorf("20 made-up kids in %v made %d fetches; at most one per second (%d) is allowed", took, a-b, allowed)
	}
	// The issuer goes away: a fetch fails, and the keys fetched before stay.
	is.stop()
	time.Sleep(1100 * time.Millisecond)
	if st, _, _ := attempt(t, base, "header", is.sign("r2", "RS256", "another-made-up", good)); st != 401 {
		t.Errorf("made-up kid with the issuer gone: %d", st)
	}
	if st, ch, _ := attempt(t, base, "header", r2); st != 101 {
		t.Errorf("r2 with the issuer gone: %d %s", st, ch)
	}
	if n := testserver.Sample(gw.Metrics(t), `wsgate_auth_jwks_fetches_total{result="error"}`); n < 1 {
		t.Errorf("failed fetches: %v", n)
	}
	// A gateway that never reached it refuses with 503.
	down := testserver.Start(t, strings.Replace(jwtConfig(is), is.url, "http://"+testserver.RefusingAddr(t), 1))
	if st, _, _ := attempt(t, down.URL("/who"), "header", r2); st != 503 {
		t.Errorf("with the JWKS never reached: %d, want 503", st)
	}
	m := down.Metrics(t)
	if n := testserver.Sample(m, `wsgate_handshakes_refused_total{cause="auth_unavailable",route="/who",status="503"}`); n != 1 {
		t.Errorf("auth_unavailable refusals: %v", n)
	}
}
