package cplugin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/cplugin"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/testkit/conformance"
	"github.com/wsgate/wsgate/testkit/testserver"
)

var libs = map[string]string{}

// TestMain builds the example and test plugins with the system's C
// compiler, warnings as errors.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugins")
	if err != nil {
		panic(err)
	}
	for _, src := range []string{"examples/echo.c", "examples/dumb_increment.c", "examples/debug.c", "testdata/logout.c"} {
		name := strings.TrimSuffix(filepath.Base(src), ".c")
		libs[name] = filepath.Join(dir, name+".so")
		cmd := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread", "-Iinclude",
			"-o", libs[name], src)
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
  - {path: /logout, plugin: {library: %s, init: logout_init}}
`, libs["echo"], libs["dumb_increment"], libs["debug"], libs["logout"]))
}

// TestSetCookiesFromPlugin: header_set("Set-Cookie") twice sends both
// cookies, in order (RFC 6265 §3: they cannot be joined into one header);
// any other header set twice keeps the last value, as apr_table_set does.
func TestSetCookiesFromPlugin(t *testing.T) {
	c, resp, err := websocket.DefaultDialer.Dial(start(t).URL("/logout"), nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.Close()
	want := []string{"session=; Max-Age=0; Path=/", "remember_me=; Max-Age=0; Path=/"}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, want) {
		t.Errorf("Set-Cookie %q, want %q", got, want)
	}
	if got := resp.Header.Values("X-Logged-Out"); !slices.Equal(got, []string{"yes"}) {
		t.Errorf("X-Logged-Out %q, want the last value set", got)
	}
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
		t.Errorf("echo %q, %v", p, err)
	}
}

func TestEchoPlugin(t *testing.T) { conformance.PluginEcho(t, start(t).URL("")) }

func TestDumbIncrementPlugin(t *testing.T) { conformance.PluginDumbIncrement(t, start(t).URL("")) }

// server->request is the daemon's own request_rec when it was built with
// httpd's headers and APR loads (scripts/test.sh installs both), and NULL
// otherwise.
func TestDebugPlugin(t *testing.T) {
	if !cplugin.RequestAvailable() && os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
		t.Fatal("no request_rec for plugins: build with apache2-dev's headers and install libapr1")
	}
	conformance.PluginDebug(t, start(t).URL(""), cplugin.RequestAvailable())
}

// TestHTTPDSymbols: a plugin that calls httpd's own functions cannot run
// outside httpd; loading it says which symbol and where to run it.
func TestHTTPDSymbols(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "logs.c")
	os.WriteFile(src, []byte(`#include "websocket_plugin.h"
/* httpd's, as http_log.h declares it (simplified): exists only in httpd. */
void ap_log_perror_(const char *file, int line, int module_index, int level, int status, void *p, const char *fmt, ...);
static size_t CALLBACK on_message(void *priv, const WebSocketServer *s, const int type, unsigned char *b, const size_t n)
{
    (void)priv; (void)type;
    ap_log_perror_(__FILE__, __LINE__, 0, 7, 0, 0, "message");
    return s->send(s, type, b, n);
}
static WebSocketPlugin plugin = {sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL, NULL, on_message, NULL};
extern EXPORT WebSocketPlugin *CALLBACK logs_init(void) { return &plugin; }
`), 0o644)
	lib := filepath.Join(dir, "logs.so")
	if out, err := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-Iinclude", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	_, err := cplugin.Load(lib, "logs_init")
	for _, want := range []string{"Could not load WebSocketHandler " + lib, "undefined symbol: ap_log_perror_", "serve it with mod_wsgate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loading a plugin that calls httpd: %v, want %q", err, want)
		}
	}
}

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
