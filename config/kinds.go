package config

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/wsgate/wsgate/gateway"
)

// A Kind is a kind of application a route can run. It registers itself
// from its own package (Caddy's modules do the same), and the route key
// it registers under selects it:
//
//	routes:
//	  - path: /chat
//	    backend: {socket: /run/chat.sock}   # the "backend" kind reads this value
//
// Adding a kind of application is a package with one RegisterKind call,
// and one import line in apps/all so that the programs link it in; neither
// this package nor the gateway changes.
type Kind struct {
	// Key is the route key that selects the kind, such as "backend".
	Key string
	// Doc says in one line what the kind runs, for `wsgate apps`.
	Doc string
	// Decode reads the key's value and returns the route's application,
	// not yet provisioned: gateway.New provisions and validates it, and
	// Gateway.Start starts it. It reports problems through d and must
	// perform no I/O.
	Decode func(d *Decoder) gateway.Handler
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// RegisterKind registers a kind of application. It panics on a duplicate
// or reserved key, which is a programming error found at startup.
func RegisterKind(k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if k.Key == "" || k.Decode == nil {
		panic("config: RegisterKind needs a key and a decoder")
	}
	if _, dup := kinds[k.Key]; dup || isPolicyKey(k.Key) || k.Key == "path" {
		panic(fmt.Sprintf("config: route key %q is already taken", k.Key))
	}
	kinds[k.Key] = k
}

// Kinds returns the registered kinds, "app" first, then by key.
func Kinds() []Kind {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	out := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Key == "app") != (out[j].Key == "app") {
			return out[i].Key == "app"
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// kindKeys lists the registered keys as "a, b and c" (or "or").
func kindKeys(conj string) string {
	var keys []string
	for _, k := range Kinds() {
		keys = append(keys, k.Key)
	}
	if len(keys) < 2 {
		return strings.Join(keys, "")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " " + conj + " " + keys[len(keys)-1]
}

// The "app" kind runs a Go application registered with gateway.RegisterApp
// (the built-in ones, or a program's own): app: echo.
func init() {
	RegisterKind(Kind{
		Key: "app",
		Doc: "a Go application registered by name: " + "app: NAME",
		Decode: func(d *Decoder) gateway.Handler {
			name, ok := d.Scalar()
			if !ok {
				return nil
			}
			info, ok := gateway.LookupApp(name)
			if !ok {
				d.Errorf("unknown application %q (known: %s)", name, strings.Join(gateway.AppNames(), ", "))
				return nil
			}
			return info.New()
		},
	})
}
