package wsoverhttp_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestGripSig: a GRIP application (grip_echo.py, checking Grip-Sig with
// PyJWT as the GRIP libraries' validate_sig does) serves the routes that
// sign with its key, from the configuration or from a file, and refuses
// the rest: unsigned, signed with another key, or carrying a client's own
// Grip-Sig, which is never forwarded.
func TestGripSig(t *testing.T) {
	py := python(t)
	if exec.Command(py, "-c", "import jwt").Run() != nil {
		if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
			t.Fatal("PyJWT is required (Debian package python3-jwt); ./scripts/test.sh installs it")
		}
		t.Skip("PyJWT is not installed (Debian package python3-jwt)")
	}
	const key = "grip-secret"
	keyFile := filepath.Join(t.TempDir(), "grip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := testserver.StartReporting(t, exec.Command(py, "grip_echo.py", "--port", "0", "--key-file", keyFile, "--iss", "pushpin"), `serving on (\S+)`)
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /file, backend: {http: "http://%[1]s/", sig_key_file: %[2]s}}
  - {path: /inline, backend: {http: "http://%[1]s/", sig_key: %[3]s, sig_iss: pushpin}}
  - {path: /unsigned, backend: {http: "http://%[1]s/"}}
  - {path: /otherkey, backend: {http: "http://%[1]s/", sig_key: not-the-key}}
  - {path: /otheriss, backend: {http: "http://%[1]s/", sig_key: %[3]s, sig_iss: someone-else}}
`, app, keyFile, key))

	// A token the application would accept, sent by a client.
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Issuer: "pushpin", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"/file", "/inline"} {
		t.Run(route, func(t *testing.T) {
			// The client's own header is replaced, not kept beside ours.
			c, _ := testserver.Dial(t, gw.URL(route), http.Header{"Grip-Sig": {"garbage"}})
			for i := range 3 {
				msg := fmt.Sprintf("message %d", i)
				c.WriteMessage(websocket.TextMessage, []byte(msg))
				testserver.Expect(t, c, websocket.TextMessage, msg)
			}
			c.WriteMessage(websocket.TextMessage, []byte("claims"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			iss, left, _ := strings.Cut(string(p), " ")
			n, _ := strconv.Atoi(left)
			if iss != "pushpin" || n < 3000 || n > 3600 {
				t.Errorf("claims %q: want iss pushpin and exp about an hour ahead", p)
			}
		})
	}
	for route, hd := range map[string]http.Header{
		"/unsigned": {"Grip-Sig": {forged}}, // a client's valid token is not forwarded
		"/otherkey": nil,
		"/otheriss": nil,
	} {
		t.Run(route, func(t *testing.T) {
			c, resp, err := websocket.DefaultDialer.Dial(gw.URL(route), hd)
			if err == nil {
				c.Close()
				t.Fatalf("the application served a request it should not have believed")
			}
			if resp == nil || resp.StatusCode < 400 {
				t.Fatalf("want a refusal, got %v (%v)", resp, err)
			}
		})
	}
}
