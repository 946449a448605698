package cplugin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/apps/cplugin"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/internal/conformance"
	"github.com/wsgate/wsgate/internal/testserver"
)

var libs = map[string]string{}

// TestMain builds the example and test plugins with the system's C
// compiler, warnings as errors.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugins")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"echo", "dumb_increment", "debug"} {
		libs[name] = filepath.Join(dir, name+".so")
		cmd := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread", "-Iinclude",
			"-o", libs[name], "examples/"+name+".c")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func start(t *testing.T) *testserver.Server {
	return testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, plugin: {library: %s, init: echo_init}}
  - {path: /increment, plugin: {library: %s, init: dumb_increment_init}}
  - {path: /debug, plugin: {library: %s, init: debug_init}}
`, libs["echo"], libs["dumb_increment"], libs["debug"]))
}

func TestEchoPlugin(t *testing.T) { conformance.PluginEcho(t, start(t).URL("")) }

func TestDumbIncrementPlugin(t *testing.T) { conformance.PluginDumbIncrement(t, start(t).URL("")) }

// The daemon has no request_rec: server->request is NULL.
func TestDebugPlugin(t *testing.T) { conformance.PluginDebug(t, start(t).URL(""), false) }

func TestSendFromThreads(t *testing.T) { conformance.PluginThreads(t, start(t).URL("")) }

func TestLoaderErrors(t *testing.T) {
	for init, want := range conformance.LoaderErrors(libs["debug"]) {
		cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf("routes:\n  - path: /x\n    plugin: {library: %s, init: %s}\n", libs["debug"], init)))
		if err == nil {
			_, err = daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "p.yaml:2: routes[0].plugin: ") {
			t.Errorf("%s: %v", init, err)
		}
	}
	cfg, _ := config.Parse("p.yaml", []byte("routes:\n  - path: /x\n    plugin: {library: /nonexistent.so, init: x}\n"))
	if _, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "Could not load WebSocketHandler /nonexistent.so") {
		t.Errorf("missing library: %v", err)
	}
}

// TestStopDestroysOnlyWhatItLoaded: a plugin this package loaded is
// destroyed once when its route stops; one that httpd loaded (FromPointer)
// is httpd's to destroy, with its configuration pool, and Stop leaves it
// alone.
func TestStopDestroysOnlyWhatItLoaded(t *testing.T) {
	log := filepath.Join(t.TempDir(), "destroy.log")
	t.Setenv("WSGATE_DEBUG_PLUGIN_LOG", log)
	count := func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "destroy")
	}
	owned, err := cplugin.Load(libs["debug"], "debug_init")
	if err != nil {
		t.Fatal(err)
	}
	borrowed, err := cplugin.FromPointer(owned.Pointer(), "debug_init")
	if err != nil {
		t.Fatal(err)
	}
	borrowed.Stop(context.Background())
	if n := count(); n != 0 {
		t.Fatalf("stopping a plugin loaded elsewhere destroyed it (%d)", n)
	}
	owned.Stop(context.Background())
	owned.Stop(context.Background())
	if n := count(); n != 1 {
		t.Fatalf("destroy ran %d times for the plugin Load loaded, want 1", n)
	}
}
