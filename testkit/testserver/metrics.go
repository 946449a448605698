package testserver

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Sample returns the value of one sample (name with its labels, as
// exposed) in a Prometheus text exposition, or -1 when it is not there.
func Sample(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// Promtool checks an exposition with Prometheus's promtool (Debian package
// prometheus). It reports false when promtool is not installed, which
// fails the test when the peers are required (./scripts/test.sh).
func Promtool(t testing.TB, text string) bool {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
			t.Fatal("promtool is not installed (Debian package prometheus); ./scripts/test.sh installs it")
		}
		return false
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	return true
}

// Metrics returns the daemon's /metrics exposition, from its admin
// listener.
func (s *Server) Metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + s.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}
