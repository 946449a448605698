//go:build !cgo

package cplugin

import (
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
)

// Without cgo there is no C plugin support; the plugin key is still known,
// so that a configuration using it gets a clear error.
func init() {
	config.RegisterKind(config.Kind{
		Key: "plugin",
		Doc: "an apache-websocket C plugin (not in this build: it was built without cgo)",
		Decode: func(d *config.Decoder) gateway.Handler {
			d.Errorf("this wsgate was built without cgo (no C compiler): C plugins are not available")
			return nil
		},
	})
}
