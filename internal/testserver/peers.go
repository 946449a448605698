package testserver

import (
	"os"
	"os/exec"
	"testing"
)

// Peer returns the path of a program the test runs as a real peer (the
// first of names found), installed by Debian package pkg. A missing one
// skips the test, or fails it when the peers are required
// (WSGATE_REQUIRE_PEERS, as ./scripts/test.sh sets it).
func Peer(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
		t.Fatalf("%s is required (Debian package %s); ./scripts/test.sh installs it", names[0], pkg)
	}
	t.Skipf("%s is not installed (Debian package %s)", names[0], pkg)
	return ""
}
