package apachetest

import (
	"testing"

	"github.com/wsgate/wsgate/testkit/conformance"
)

// pluginLocations are the three plugins under /echo, /increment and
// /debug, as the daemon's plugin tests configure them.
const pluginLocations = `
<Location /echo>
  SetHandler websocket-handler
  WebSocketHandler {{BUILD}}/plugins/echo.so echo_init
</Location>
<Location /increment>
  SetHandler websocket-handler
  WebSocketHandler {{BUILD}}/plugins/dumb_increment.so dumb_increment_init
</Location>
<Location /debug>
  SetHandler websocket-handler
  WebSocketHandler {{BUILD}}/plugins/debug.so debug_init
</Location>
`

// TestPlugins runs the daemon's plugin cases against httpd, where the
// plugins are loaded by WebSocketHandler as mod_websocket loads them, under
// a threaded MPM and under prefork. In httpd, server->request is the
// request_rec.
func TestPlugins(t *testing.T) {
	for _, mpm := range []string{"event", "prefork"} {
		t.Run(mpm, func(t *testing.T) {
			base := "ws://" + start(t, options{MPM: mpm, Body: pluginLocations}).Addr()
			t.Run("echo", func(t *testing.T) { conformance.PluginEcho(t, base) })
			t.Run("dumb_increment", func(t *testing.T) { conformance.PluginDumbIncrement(t, base) })
			t.Run("debug", func(t *testing.T) { conformance.PluginDebug(t, base, true) })
			t.Run("threads", func(t *testing.T) { conformance.PluginThreads(t, base) })
		})
	}
}
