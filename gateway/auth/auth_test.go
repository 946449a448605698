package auth_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// issuer runs testdata/issuer.py: PyJWT (Debian's python3-jwt) makes
// the tokens, with keys openssl made, and its own HTTP server publishes
// them as a JWKS. Nothing of wsgate's makes or serves a token.
type issuer struct {
	t    *testing.T
	py   string
	dir  string // private keys
	jwks string // the published public keys (KID.pem)
	url  string // http://127.0.0.1:port
	cmd  *exec.Cmd
}

// stop kills the JWKS server.
func (is *issuer) stop() { is.cmd.Process.Kill(); is.cmd.Wait() }

func startIssuer(t *testing.T, maxAge int) *issuer {
	t.Helper()
	is := &issuer{t: t, py: testserver.Python(t), dir: t.TempDir(), jwks: t.TempDir()}
	portFile := filepath.Join(is.dir, "port")
	cmd := exec.Command(is.py, "testdata/issuer.py", "serve", is.jwks, portFile, fmt.Sprint(maxAge))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	is.cmd = cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var port []byte
	if !testserver.WaitFor(10*time.Second, func() bool { port, _ = os.ReadFile(portFile); return len(port) > 0 }) {
		t.Fatal("the issuer did not start")
	}
	is.url = "http://127.0.0.1:" + string(port)
	return is
}

// key makes a key pair with the openssl CLI: algorithm is RSA, EC or
// ED25519. publish puts its public half in the JWKS.
func (is *issuer) key(kid, algorithm string, publish bool) {
	is.t.Helper()
	priv := filepath.Join(is.dir, kid+".key")
	args := map[string][]string{
		"RSA":     {"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
		"EC":      {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
		"ED25519": {"genpkey", "-algorithm", "ED25519"},
	}[algorithm]
	run(is.t, "openssl", append(args, "-out", priv)...)
	run(is.t, "openssl", "pkey", "-in", priv, "-pubout", "-out", filepath.Join(is.dir, kid+".pem"))
	if publish {
		is.publish(kid)
	}
}

func (is *issuer) publish(kid string) {
	b, err := os.ReadFile(filepath.Join(is.dir, kid+".pem"))
	if err != nil {
		is.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(is.jwks, kid+".pem"), b, 0o644); err != nil {
		is.t.Fatal(err)
	}
}

func (is *issuer) withdraw(kid string) { os.Remove(filepath.Join(is.jwks, kid+".pem")) }

// sign makes a token with PyJWT: signed by the key keyKid, with kid in
// its header, and claims (JSON; "+N" times are from now).
func (is *issuer) sign(keyKid, alg, kid, claims string) string {
	is.t.Helper()
	return run(is.t, is.py, "testdata/issuer.py", "sign", filepath.Join(is.dir, keyKid+".key"), alg, kid, claims)
}

func (is *issuer) fetches() string {
	resp, err := http.Get(is.url + "/fetches")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v %s", name, strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out))
}

// who is a route whose program answers with what CGI tells it of the
// client: REMOTE_USER|AUTH_TYPE|offered subprotocols|chosen one.
const who = `program: {command: [sh, -c, 'echo "$REMOTE_USER|$AUTH_TYPE|$WEBSOCKET_PROTOCOLS|$WEBSOCKET_SUBPROTOCOL"; cat']}`

func jwtConfig(is *issuer) string {
	return fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - path: /who
    subprotocols: [chat]
    auth:
      jwt:
        algorithms: [RS256, ES256, EdDSA]
        jwks_url: %s/jwks.json
        jwks_min_refresh: 1s
        issuer: https://issuer.test
        audience: [wsgate]
        claims: {scope: chat}
        from: [header, "query:access_token", "cookie:jwt", "subprotocol:bearer."]
    %s
`, is.url, who)
}

// attempt dials with the token where carrier says, and returns the
// answer's status, its WWW-Authenticate, and the first message.
func attempt(t *testing.T, base, carrier, tok string, protos ...string) (int, string, string) {
	t.Helper()
	u, h := base, http.Header{}
	switch carrier {
	case "header":
		h.Set("Authorization", "Bearer "+tok)
	case "query":
		u += "?access_token=" + url.QueryEscape(tok)
	case "cookie":
		h.Set("Cookie", "other=1; jwt="+tok)
	case "subprotocol":
		protos = append(protos, "bearer."+tok)
	case "basic":
		h.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
	}
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(u, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("%v", err)
		}
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), ""
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("no first message: %v", err)
	}
	return resp.StatusCode, "", strings.TrimSpace(string(p))
}

const good = `{"sub":"alice","iss":"https://issuer.test","aud":"wsgate","scope":"read chat","exp":"+300"}`

func TestJWT(t *testing.T) {
	is := startIssuer(t, 300)
	is.key("r1", "RSA", true)
	is.key("e1", "EC", true)
	is.key("d1", "ED25519", true)
	is.key("r9", "RSA", false) // never published
	gw := testserver.Start(t, jwtConfig(is))
	base := gw.URL("/who")

	for _, tc := range []struct {
		name, carrier, tok string
		protos             []string
		status             int
		challenge, first   string // substrings
	}{
		{"valid RS256 in the header", "header", is.sign("r1", "RS256", "r1", good), nil, 101, "", "alice|Bearer||"},
		{"valid ES256", "header", is.sign("e1", "ES256", "e1", good), nil, 101, "", "alice|Bearer|"},
		{"valid EdDSA", "header", is.sign("d1", "EdDSA", "d1", good), nil, 101, "", "alice|Bearer|"},
		{"in the query", "query", is.sign("r1", "RS256", "r1", good), nil, 101, "", "alice|Bearer|"},
		{"in a cookie", "cookie", is.sign("r1", "RS256", "r1", good), nil, 101, "", "alice|Bearer|"},
		{"as a subprotocol, never chosen", "subprotocol", is.sign("r1", "RS256", "r1", good), []string{"chat"}, 101, "", "alice|Bearer|chat|chat"},
		{"no token", "", "", nil, 401, `Bearer realm="wsgate"`, ""},
		{"not a bearer token", "basic", "", nil, 401, `error="invalid_request"`, ""},
		{"expired", "header", is.sign("r1", "RS256", "r1", strings.Replace(good, `"+300"`, `"-60"`, 1)), nil, 401, "has expired", ""},
		{"not yet valid", "header", is.sign("r1", "RS256", "r1", strings.Replace(good, `"exp"`, `"nbf":"+120","exp"`, 1)), nil, 401, "not valid yet", ""},
		{"wrong audience", "header", is.sign("r1", "RS256", "r1", strings.Replace(good, `"wsgate"`, `"other"`, 1)), nil, 401, "audience", ""},
		{"wrong issuer", "header", is.sign("r1", "RS256", "r1", strings.Replace(good, `issuer.test`, `evil.test`, 1)), nil, 401, "issuer", ""},
		{"unknown kid", "header", is.sign("r9", "RS256", "r9", good), nil, 401, "kid", ""},
		{"signed by another key", "header", is.sign("r9", "RS256", "r1", good), nil, 401, "signature", ""},
		{"alg none", "header", is.sign("", "none", "r1", good), nil, 401, "invalid_token", ""},
		{"HS256 with the RSA public key", "header", run(t, is.py, "testdata/issuer.py", "confuse", filepath.Join(is.dir, "r1.pem"), "r1", good), nil, 401, "invalid_token", ""},
		{"no exp", "header", is.sign("r1", "RS256", "r1", strings.Replace(good, `,"exp":"+300"`, ``, 1)), nil, 401, "no exp", ""},
		{"without the required scope", "header", is.sign("r1", "RS256", "r1", strings.Replace(good, `read chat`, `read`, 1)), nil, 403, `error="insufficient_scope"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, challenge, first := attempt(t, base, tc.carrier, tc.tok, tc.protos...)
			if status != tc.status || !strings.Contains(challenge, tc.challenge) || !strings.HasPrefix(first, tc.first) {
				t.Errorf("got %d %q %q, want %d %q %q", status, challenge, first, tc.status, tc.challenge, tc.first)
			}
			if strings.Contains(first, "bearer.") {
				t.Errorf("the token reached the program: %q", first)
			}
		})
	}
	m := gw.Metrics(t)
	for cause, want := range map[string]float64{"auth_missing": 1, "auth_invalid": 9, "auth_expired": 1, "auth_forbidden": 1} {
		if got := testserver.Sample(m, fmt.Sprintf(`wsgate_handshakes_refused_total{cause="%s",route="/who",status="%d"}`, cause, map[bool]int{true: 403, false: 401}[cause == "auth_forbidden"])); got != want {
			t.Errorf("refusals for %s: %v, want %v", cause, got, want)
		}
	}
	if ok := testserver.Sample(m, `wsgate_auth_jwks_fetches_total{result="ok"}`); ok < 1 {
		t.Errorf("jwks fetches: %v", ok)
	}
	if n := gw.Logs.Count(`user=alice`); n < 6 {
		t.Errorf("%d access log lines name the user\n%s", n, gw.Logs)
	}
	if strings.Contains(gw.Logs.String(), is.sign("r1", "RS256", "r1", good)[:40]) {
		t.Error("a token reached the log")
	}
}
