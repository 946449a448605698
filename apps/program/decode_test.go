package program_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/apps/program"
	"github.com/wsgate/wsgate/config"
)

// TestDecode: the program kind reads its own block of a route.
func TestDecode(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(`
routes:
  - path: /e
    program: {command: [cat, -u], mode: binary, max_processes: 3, env: {A: b}, kill_grace: 1s}
  - path: /f
    program: {command: "sh -c true"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Routes[0].Handler.(*program.Program).Config(); strings.Join(p.Command, " ") != "cat -u" || !p.Binary || p.MaxProcesses != 3 || p.Env[0] != "A=b" || p.KillGrace != time.Second {
		t.Fatalf("e: %+v", p)
	}
	if p := cfg.Routes[1].Handler.(*program.Program).Config(); strings.Join(p.Command, " ") != "sh -c true" {
		t.Fatalf("f: %+v", p)
	}
}
