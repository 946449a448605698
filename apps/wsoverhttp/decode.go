package wsoverhttp

import (
	"github.com/wsgate/wsgate/config"
)

// Decode reads a route's backend block that names a WebSocket-over-HTTP
// application (the backend kind hands it over when it has http or
// subrequest):
//
//	backend: {http: http://127.0.0.1:9000/events, timeout: 10s, queue: 1MiB}
//
// It reports problems through d.
func Decode(d *config.Decoder) Config {
	var c Config
	var urlAt, subAt *config.Decoder
	d.Fields(map[string]func(*config.Decoder){
		"http":       func(v *config.Decoder) { v.String(&c.URL); urlAt = v },
		"subrequest": func(v *config.Decoder) { v.String(&c.Subrequest); subAt = v },
		"timeout":    func(v *config.Decoder) { v.Duration(&c.Timeout) },
		"queue":      func(v *config.Decoder) { v.IntSize(&c.QueueBytes) },
		"max_response": func(v *config.Decoder) {
			v.Size(&c.MaxResponse)
		},
		"headers": func(v *config.Decoder) { c.Headers = append([]string{}, v.Strings()...) },
	})
	if urlAt != nil && subAt != nil {
		subAt.Errorf("excludes http: the events go to one application")
	}
	if subAt != nil && !InHTTPD {
		subAt.Errorf("is made inside httpd (mod_wsgate's WebSocketEventHandler); the daemon posts to http: URL")
	}
	if err := c.Validate(); err != nil && (urlAt != nil || subAt != nil) {
		at := urlAt
		if at == nil {
			at = subAt
		}
		at.Errorf("%v", err)
	}
	return c
}
