package backend_test

import (
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
