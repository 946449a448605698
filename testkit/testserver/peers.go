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

// Python is the one Python the tests run: Debian's /usr/bin/python3, which
// has what ./scripts/test.sh installs for it (python3-websockets, and
// python3-jwt). A python3 found first on PATH (a pyenv, a virtualenv) may
// lack them, so it is never used.
func Python(t testing.TB) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err == nil {
		if exec.Command(py, "-c", "import websockets").Run() == nil {
			return py
		}
	}
	if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
		t.Fatalf("%s with websockets is required (Debian packages python3, python3-websockets); ./scripts/test.sh installs them", py)
	}
	t.Skipf("%s with websockets is not installed (Debian package python3-websockets)", py)
	return ""
}
