//go:build cgo

package cplugin

import (
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
)

func init() {
	config.RegisterKind(config.Kind{
		Key:    "plugin",
		Doc:    "an apache-websocket C plugin: plugin: {library: PATH.so, init: FUNCTION}",
		Decode: decode,
	})
}

// decode reads plugin: {library, init}. The library is loaded by
// Provision, not here: decoding does no I/O.
func decode(d *config.Decoder) gateway.Handler {
	var library, init string
	d.Fields(map[string]func(*config.Decoder){
		"library": func(v *config.Decoder) { v.String(&library) },
		"init":    func(v *config.Decoder) { v.String(&init) },
	})
	if library == "" || init == "" {
		if d.IsMapping() {
			d.Errorf("needs library (the .so) and init (its initialization function)")
		}
		return nil
	}
	return New(library, init)
}
