package docroot_test

import (
	"testing"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/apps/docroot"
	"github.com/wsgate/wsgate/config"
)

// TestDecode: the docroot kind reads its own block, with the producer keys
// it shares with backend.
func TestDecode(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("d.yaml", []byte("routes:\n  - path: /d/\n    docroot: {root: "+dir+", allow: [echo], deny: [\"*\"], mode: per-client}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Routes[0].Handler.(*docroot.Docroot).Config()
	if d.Root != dir || d.Allow[0] != "echo" || d.Deny[0] != "*" || d.Producer.Mode != backend.PerClient {
		t.Fatalf("%+v", d)
	}
}
