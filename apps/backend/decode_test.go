package backend_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/config"
)

// TestDecode: the backend kind reads its own block of a route.
func TestDecode(t *testing.T) {
	cfg, err := config.Parse("b.yaml", []byte(`
routes:
  - path: /a
    backend: {socket: /run/a.sock, mode: per-client, open_timeout: 2s, headers: [Cookie], queue: 1MiB}
  - path: /b
    backend: {address: "127.0.0.1:9000", connections: 4}
  - path: /c
    backend: {socket: /run/c.sock, protocol: raw, delimiter: nul, message_type: binary}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes
	if b := r[0].Handler.(*backend.Backend).Config(); b.Network != "unix" || b.Address != "/run/a.sock" || b.Mode != backend.PerClient ||
		b.OpenTimeout != 2*time.Second || b.Headers[0] != "Cookie" || b.QueueBytes != 1<<20 {
		t.Fatalf("a: %+v", b)
	}
	if b := r[1].Handler.(*backend.Backend).Config(); b.Network != "tcp" || b.Connections != 4 {
		t.Fatalf("b: %+v", b)
	}
	if b := r[2].Handler.(*backend.Raw).Config(); b.Raw == nil || !b.Raw.Split || b.Raw.Delimiter != 0 || !b.Raw.Binary || b.Mode != backend.PerClient {
		t.Fatalf("c: %+v %+v", b, b.Raw)
	}
	if r[0].Kind != "backend" || r[0].App != "backend" {
		t.Fatalf("kind %q app %q", r[0].Kind, r[0].App)
	}
}

// TestDecodeErrors: a hold, an HTTP application or a subrequest where it
// cannot work is refused with the file, line and key.
func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"backend: {socket: /run/a, mode: per-client, hold: 5s}", "e.yaml:3: routes[0].backend.hold: needs mode: mux"},
		{"backend: {socket: /run/a, hold: -5s}", "e.yaml:3: routes[0].backend"},
		{"backend: {subrequest: /x.php}", "e.yaml:3: routes[0].backend.subrequest: is made inside httpd"},
		{`backend: {http: "ftp://x"}`, `e.yaml:3: routes[0].backend.http: "ftp://x" is not an http:// or https:// URL`},
		{`backend: {http: "http://127.0.0.1:9/", subrequest: /x}`, "routes[0].backend.subrequest: excludes http"},
		{`backend: {http: "http://127.0.0.1:9/", sig_key: ""}`, "e.yaml:3: routes[0].backend.sig_key: is empty"},
		{`backend: {http: "http://127.0.0.1:9/", sig_key_file: /nonexistent/grip.key}`, "e.yaml:3: routes[0].backend.sig_key_file: open /nonexistent/grip.key: no such file"},
		{`backend: {http: "http://127.0.0.1:9/", sig_key: k, sig_key_file: /etc/hostname}`, "routes[0].backend.sig_key_file: excludes sig_key"},
		{`backend: {http: "http://127.0.0.1:9/", sig_iss: me}`, "e.yaml:3: routes[0].backend: sig_iss needs sig_key"},
	} {
		_, err := config.Parse("e.yaml", []byte("routes:\n  - path: /a\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	cfg, err := config.Parse("ok.yaml", []byte("routes:\n  - path: /a\n    backend: {socket: /run/a, hold: 30s}\n"))
	if err != nil || cfg.Routes[0].Handler.(*backend.Backend).Config().Hold != 30*time.Second {
		t.Fatalf("hold: %v", err)
	}
}
