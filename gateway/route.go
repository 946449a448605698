package gateway

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/wsgate/wsgate/websocket"
)

// Route binds a URL path to an application and a policy. A path ending in
// "/" is a prefix and serves everything below it; any other path is exact.
// The longest matching path wins, as with http.ServeMux.
type Route struct {
	Path    string
	Handler Handler
	Policy  Policy
	// App names the application for logs, such as "echo".
	App string
	// Key identifies the route's configuration: a reload keeps a route
	// serving when the new configuration has one with the same Path and
	// Key (config sets it from the route's text). Empty never matches.
	Key string

	hub                           *Hub
	provisioned, started, stopped bool
	live                          atomic.Int64 // connections admitted and not ended
	retired                       atomic.Bool  // replaced by a reload
	stats                         routeStats
	users                         userCounts // for Policy.MaxConnectionsPerUser
}

// Hub returns the registry of the route's connections.
func (r *Route) Hub() *Hub { return r.hub }

// Broadcast sends a message to every open connection of the route.
func (r *Route) Broadcast(typ websocket.MessageType, data []byte) int {
	return r.hub.Broadcast(typ, data, nil)
}

func (r *Route) matches(path string) bool {
	if strings.HasSuffix(r.Path, "/") {
		return strings.HasPrefix(path, r.Path)
	}
	return path == r.Path
}

func (r *Route) validate() error {
	if !strings.HasPrefix(r.Path, "/") {
		return fmt.Errorf("route path %q must start with /", r.Path)
	}
	return r.Policy.Validate()
}
