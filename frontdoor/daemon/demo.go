package daemon

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/wsgate/wsgate/gateway"
)

//go:embed demo/index.html
var demoPage []byte

// serveDemo serves the demo page with the paths of the routes that run the
// built-in applications, so it works with any configuration that has them.
func serveDemo(w http.ResponseWriter, r *http.Request, gw *gateway.Gateway) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	paths := map[string]string{}
	for _, rt := range gw.Routes() {
		if _, seen := paths[rt.App]; !seen && rt.App != "" && !strings.HasSuffix(rt.Path, "/") {
			paths[rt.App] = rt.Path
		}
	}
	js, _ := json.Marshal(paths)
	page := bytes.Replace(demoPage, []byte("{/*ROUTES*/}"), js, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
	w.Write(page)
}
