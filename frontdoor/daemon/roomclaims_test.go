package daemon_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestRoomClaims: rooms that only an identity with a claim may join. A
// token with role admin joins admin-ops; one without is refused (the
// application learns it; counted and logged), and receives nothing sent
// to the room; per-user limits count by the token's subject.
func TestRoomClaims(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	const key = "a-shared-secret-of-forty-bytes-0123456789"
	os.WriteFile(secret, []byte(key), 0o600)
	s := start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - path: /room
    app: test-control
    auth: {jwt: {algorithms: [HS256], secret_file: %s}}
    room_claims: {"admin-*": role=admin, members: scope=chat}
    max_connections_per_user: 2
`, secret))
	sign := func(claims string) string { return testserver.SignHS256(t, key, claims) }
	dial := func(tok string) (*websocket.Conn, *http.Response, error) {
		return websocket.DefaultDialer.Dial(s.URL("/room"), http.Header{"Authorization": {"Bearer " + tok}})
	}
	say := func(c *websocket.Conn, msg, want string) {
		t.Helper()
		c.WriteMessage(websocket.TextMessage, []byte(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != want {
			t.Fatalf("%s: %q %v, want %q", msg, p, err, want)
		}
	}
	admin, _, err := dial(sign(`{"sub":"ada","role":"admin","scope":"chat"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	guest, _, err := dial(sign(`{"sub":"gus","scope":"read"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	say(admin, "join admin-ops", "joined admin-ops")
	say(admin, "join members", "joined members")
	say(guest, "join admin-ops", "refused admin-ops")
	say(guest, "join members", "refused members")
	say(guest, "join lobby", "joined lobby")
	// Only the admin hears the room.
	say(admin, "say admin-ops for admins", "for admins")
	guest.WriteMessage(websocket.TextMessage, []byte("echo-check"))
	guest.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := guest.ReadMessage(); err != nil || string(p) != "echo-check" {
		t.Errorf("the guest got %q %v before its own echo", p, err)
	}
	if n := testserver.Sample(s.Metrics(t), `wsgate_room_joins_refused_total{route="/room"}`); n != 2 {
		t.Errorf("refused joins counted: %v", n)
	}
	if n := s.Logs.Count("room join refused"); n != 2 {
		t.Errorf("%d log lines for refused joins", n)
	}
	// max_connections_per_user: ada has one; a second is fine, a third is 429.
	second, _, err := dial(sign(`{"sub":"ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, resp, err := dial(sign(`{"sub":"ada"}`)); err == nil || resp.StatusCode != 429 {
		t.Errorf("a third connection for ada: %v %v, want 429", resp, err)
	}
	second.Close()
	if !testserver.WaitFor(5*time.Second, func() bool {
		c, _, err := dial(sign(`{"sub":"ada"}`))
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Error("ada could not connect again after closing one")
	}
}
