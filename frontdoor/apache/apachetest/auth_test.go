package apachetest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// ask sends a message to the request plugin and returns its answer.
func ask(t *testing.T, c *websocket.Conn, q string) string {
	t.Helper()
	c.WriteMessage(websocket.TextMessage, []byte(q))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return string(p)
}

// TestHttpdAuthReachesApplications: in mod_wsgate, httpd's own
// AuthType Basic (mod_auth_basic, an htpasswd -B file) and Require
// decide; the user it found reaches a C plugin as r->user, a program as
// REMOTE_USER and AUTH_TYPE, and the access log. In the daemon, the same
// plugin gets a JWT's subject as r->user.
func TestHttpdAuthReachesApplications(t *testing.T) {
	dir := aprPlugins(t)
	out, err := exec.Command(testserver.Peer(t, "apache2-utils", "htpasswd"), "-nbB", "erin", "open sesame").Output()
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, options{Modules: []string{"auth_basic", "authn_core", "authn_file", "authz_user"},
		Files: map[string]string{"htpasswd": string(out)},
		Body: fmt.Sprintf(`
<Location /private>
  AuthType Basic
  AuthName "members"
  AuthBasicProvider file
  AuthUserFile {{ROOT}}/htpasswd
  Require valid-user
</Location>
<Location /private/plugin>
  SetHandler websocket-handler
  WebSocketHandler %s/mod_websocket_request.so request_init
</Location>
<Location /private/program>
  SetHandler websocket-handler
  WebSocketProgram sh -c 'echo "$REMOTE_USER|$AUTH_TYPE"; cat'
</Location>
<Location /public>
  SetHandler websocket-handler
  WebSocketHandler %[1]s/mod_websocket_request.so request_init
</Location>
`, dir)})
	base := "ws://" + h.Addr()
	token := http.Header{"X-Client-Token": {"t"}}
	withUser := func(user, pass string) http.Header {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return http.Header{"Authorization": r.Header["Authorization"], "X-Client-Token": {"t"}}
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		want int
	}{{"no credentials", token, 401}, {"a wrong password", withUser("erin", "guess"), 401}} {
		if _, resp, err := dialWith(base+"/private/plugin", tc.h); err == nil || resp == nil || resp.StatusCode != tc.want {
			t.Errorf("%s: %v %v, want %d", tc.name, resp, err, tc.want)
		}
	}
	c, _ := dialOK(t, base+"/private/plugin", withUser("erin", "open sesame"))
	if u, a := ask(t, c, "user"), ask(t, c, "auth_type"); u != "erin" || a != "Basic" {
		t.Errorf("the plugin sees r->user %q, r->ap_auth_type %q", u, a)
	}
	p, _ := dialOK(t, base+"/private/program", withUser("erin", "open sesame"))
	p.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, line, err := p.ReadMessage(); err != nil || strings.TrimSpace(string(line)) != "erin|Basic" {
		t.Errorf("the program got %q %v", line, err)
	}
	pub, _ := dialOK(t, base+"/public", token)
	if u := ask(t, pub, "user"); u != "(null)" {
		t.Errorf("an anonymous client's r->user: %q", u)
	}
	c.Close()
	if !testserver.WaitFor(10*time.Second, func() bool { return strings.Contains(h.Log(), "user=erin") }) {
		t.Errorf("no access line names erin:\n%s", h.Log())
	}

	// The daemon: the same plugin behind a JWT.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte(strings.Repeat("k", 40)), 0o600)
	d := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - path: /request
    plugin: {library: %s/mod_websocket_request.so, init: request_init}
    auth: {jwt: {algorithms: [HS256], secret_file: %s}}
`, dir, secret))
	tok := testserver.SignHS256(t, strings.Repeat("k", 40), `{"sub":"frank"}`)
	dc, _ := dialOK(t, d.URL("/request"), http.Header{"X-Client-Token": {"t"}, "Authorization": {"Bearer " + tok}})
	if u, a := ask(t, dc, "user"), ask(t, dc, "auth_type"); u != "frank" || a != "Bearer" {
		t.Errorf("in the daemon the plugin sees r->user %q, r->ap_auth_type %q", u, a)
	}
}
