package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPagesAt80Columns: the manual pages made from the README
// (scripts/man.sh, with Debian's go-md2man) render at 80 columns with no
// warning from man (the README's tables became paragraphs), and say what
// they are about.
func TestManPagesAt80Columns(t *testing.T) {
	for _, tool := range []string{"go-md2man", "man"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
				t.Fatalf("%s is required: ./scripts/test.sh installs it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("../../scripts/man.sh", dir, "0.0.0").CombinedOutput(); err != nil {
		t.Fatalf("man.sh: %v\n%s", err, out)
	}
	for page, want := range map[string]string{"wsgate.1": "wsgate check", "wsgate.yaml.5": "keepalive_interval"} {
		cmd := exec.Command("man", "-l", "--warnings=w", filepath.Join(dir, page))
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("man %s: %v\n%s", page, err, stderr.String())
		}
		if stderr.Len() > 0 {
			t.Errorf("man %s at 80 columns warns:\n%s", page, stderr.String())
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("man %s does not mention %s", page, want)
		}
		if strings.Contains(string(out), "|---") || strings.Contains(string(out), "│") {
			t.Errorf("man %s still has a table", page)
		}
	}
}
