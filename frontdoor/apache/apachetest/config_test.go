package apachetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/testkit/conformance"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestConfigErrors: a bad directive fails httpd -t with httpd's file and
// line, and mod_websocket's message where mod_websocket has one. Plugins
// are loaded, and refused, at this point, as mod_websocket does.
func TestConfigErrors(t *testing.T) {
	debug := "{{BUILD}}/plugins/debug.so"
	cases := []struct {
		name, directive, want string
	}{
		{"missing library", "WebSocketHandler {{ROOT}}/nonexistent.so echo_init", "Could not load WebSocketHandler {{ROOT}}/nonexistent.so: "},
		{"origin check", "WebSocketOriginCheck Sometimes", "WebSocketOriginCheck must be Off, Same, or Trusted"},
		{"max message size", "WebSocketMaxMessageSize lots", "Invalid maximum message size"},
		{"negative max message size", "WebSocketMaxMessageSize -1", "Invalid maximum message size"},
		{"app", "WebSocketApp nonesuch", `WebSocketApp: unknown application "nonesuch" (known: chat, dumb-increment, echo)`},
		{"docroot", "WebSocketDocroot {{ROOT}}/nonexistent", "WebSocketDocroot: docroot {{ROOT}}/nonexistent is not a directory"},
		{"docroot glob", "WebSocketDocroot {{ROOT}}\n  WebSocketAllow [", `WebSocketDocroot (allow[0]): bad glob "["`},
		{"program", "WebSocketProgram /no/such/program", `WebSocketProgram: program /no/such/program: exec: "/no/such/program"`},
		{"backend mode", "WebSocketBackend /run/x.sock sideways", "WebSocketBackend's mode must be mux, per-client or raw"},
		{"idle timeout", "WebSocketIdleTimeout 5 minutes", "WebSocketIdleTimeout takes one argument"},
		{"idle timeout unit", "WebSocketIdleTimeout 5y", `WebSocketIdleTimeout: invalid duration "5y"`},
		{"keepalive", "WebSocketKeepalive 1.5", `WebSocketKeepalive: invalid duration "1.5"`},
		{"keepalive unit only", "WebSocketKeepalive s", `WebSocketKeepalive: invalid duration "s"`},
		{"deflate", "WebSocketDeflate maybe", "WebSocketDeflate must be On or Off"},
		{"library in a location", "WsgateLibrary /x.so", "WsgateLibrary not allowed in <Location> context"},
	}
	for init, want := range conformance.LoaderErrors(debug) {
		cases = append(cases, struct{ name, directive, want string }{init, "WebSocketHandler " + debug + " " + init, want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := configure(t, options{Body: "\n<Location /x>\n  SetHandler websocket-handler\n  " + c.directive + "\n</Location>\n"})
			out, err := h.check()
			if err == nil {
				t.Fatalf("httpd -t accepted %q:\n%s", c.directive, out)
			}
			expand := strings.NewReplacer("{{BUILD}}", build, "{{ROOT}}", h.root).Replace
			want := expand(c.want)
			where := fmt.Sprintf("Syntax error on line %d of %s:", lineOf(t, h, strings.Split(expand(c.directive), "\n")[0]), h.conf)
			if !strings.Contains(out, want) || !strings.Contains(out, where) {
				t.Fatalf("httpd -t said:\n%s\nwant %q and %q", out, where, want)
			}
		})
	}
}

// TestConfigAccepted: valid spellings pass httpd -t, and the deprecated
// MaxMessageSize warns with its file and line, as mod_websocket does.
func TestConfigAccepted(t *testing.T) {
	h := configure(t, options{Body: `
<Location /x>
  SetHandler websocket-handler
  WebSocketApp echo
  MaxMessageSize 1000
  WebSocketIdleTimeout 1m30s
  WebSocketKeepalive 250ms
  WebSocketDeflate On
  WebSocketOriginCheck trusted
  WebSocketTrustedOrigin https://a.example https://b.example
  WebSocketAllowReservedStatusCodes On
</Location>
<Location /y>
  SetHandler websocket-handler
  WebSocketIdleTimeout 90
  WebSocketKeepalive 1.5h
  WebSocketBackend unix:/run/wsgate/echo per-client
</Location>
`})
	out, err := h.check()
	if err != nil {
		t.Fatalf("httpd -t: %v\n%s", err, out)
	}
	want := fmt.Sprintf("The MaxMessageSize directive (%s:%d) is deprecated; use WebSocketMaxMessageSize instead", h.conf, lineOf(t, h, "MaxMessageSize 1000"))
	if !strings.Contains(out, want) {
		t.Fatalf("httpd -t said:\n%s\nwant %q", out, want)
	}
}

// TestNestedLocationsInherit: a nested <Location> inherits the directives
// it does not set (mod_websocket, having no merge function, lost them).
func TestNestedLocationsInherit(t *testing.T) {
	h := start(t, options{Body: `
<Location /app>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketMaxMessageSize 30
  WebSocketOriginCheck Off
</Location>
<Location /app/big>
  WebSocketMaxMessageSize 1000
</Location>
`})
	x := func(n int) string { return strings.Repeat("x", n) }
	for _, c := range []conformance.Frame{
		{Name: "outer limit", Path: "/app", In: ws.Text(x(31)), Close: 1009},
		{Name: "inner limit", Path: "/app/big", In: ws.Concat(ws.Text(x(31)), ws.Close(1000, "")), Echoes: []string{x(31)}, Close: 1000},
		{Name: "inner limit exceeded", Path: "/app/big", In: ws.Text(x(1001)), Close: 1009},
		{Name: "inherited origin check", Path: "/app/big", Extra: []string{"Origin: http://evil.example"}, In: ws.Close(1000, ""), Close: 1000},
	} {
		r, err := c.Run(h.Addr())
		if err == nil {
			err = c.Check(r)
		}
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}

// TestInstallLayout: make install-apache puts the module, the engine, the
// plugins, the header and the a2enmod files where Debian's httpd and
// wsgate.conf expect them.
func TestInstallLayout(t *testing.T) {
	need(t)
	dest := t.TempDir()
	out, err := exec.Command("make", "-s", "-C", "..", "OUT="+build, "DESTDIR="+dest, "install-apache").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	libexec, _ := exec.Command("apxs", "-q", "LIBEXECDIR").Output()
	sysconf, _ := exec.Command("apxs", "-q", "SYSCONFDIR").Output()
	mods := filepath.Join(dest, strings.TrimSpace(string(libexec)))
	avail := filepath.Join(dest, strings.TrimSpace(string(sysconf)), "mods-available")
	for _, f := range []string{
		filepath.Join(mods, "mod_wsgate.so"), filepath.Join(dest, "usr/lib/wsgate/libwsgate.so"),
		filepath.Join(dest, "usr/lib/wsgate/plugins/echo.so"), filepath.Join(dest, "usr/lib/wsgate/plugins/dumb_increment.so"),
		filepath.Join(dest, "usr/include/wsgate/websocket_plugin.h"),
		filepath.Join(avail, "wsgate.load"), filepath.Join(avail, "wsgate.conf"),
	} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	load, _ := os.ReadFile(filepath.Join(avail, "wsgate.load"))
	if !strings.Contains(string(load), "LoadModule wsgate_module "+strings.TrimSpace(string(libexec))+"/mod_wsgate.so") {
		t.Errorf("wsgate.load: %s", load)
	}
	// Debian's a2enmod finds the module where install-apache put it.
	if a2enmod, err := exec.LookPath("a2enmod"); err == nil {
		confdir := filepath.Dir(avail)
		os.MkdirAll(filepath.Join(confdir, "mods-enabled"), 0o755)
		cmd := exec.Command(a2enmod, "wsgate")
		cmd.Env = append(os.Environ(), "APACHE_CONFDIR="+confdir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("a2enmod wsgate: %v\n%s", err, out)
		}
		if _, err := os.Lstat(filepath.Join(confdir, "mods-enabled", "wsgate.load")); err != nil {
			t.Errorf("a2enmod did not enable wsgate: %v", err)
		}
	}
}
