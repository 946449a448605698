package wsoverhttp

import (
	"bytes"
	"os"

	"github.com/wsgate/wsgate/config"
)

// Decode reads a route's backend block that names a WebSocket-over-HTTP
// application (the backend kind hands it over when it has http or
// subrequest):
//
//	backend: {http: http://127.0.0.1:9000/events, timeout: 10s, queue: 1MiB,
//	          sig_key_file: /etc/wsgate/grip.key, sig_iss: pushpin}
//
// It reports problems through d.
func Decode(d *config.Decoder) Config {
	var c Config
	var urlAt, subAt, keyAt, fileAt *config.Decoder
	d.Fields(map[string]func(*config.Decoder){
		"http":       func(v *config.Decoder) { v.String(&c.URL); urlAt = v },
		"subrequest": func(v *config.Decoder) { v.String(&c.Subrequest); subAt = v },
		"timeout":    func(v *config.Decoder) { v.Duration(&c.Timeout) },
		"queue":      func(v *config.Decoder) { v.IntSize(&c.QueueBytes) },
		"max_response": func(v *config.Decoder) {
			v.Size(&c.MaxResponse)
		},
		"headers": func(v *config.Decoder) { c.Headers = append([]string{}, v.Strings()...) },
		"sig_key": func(v *config.Decoder) {
			var k string
			v.String(&k)
			if k == "" {
				v.Errorf("is empty: requests would be signed with no secret")
			}
			c.SigKey, keyAt = []byte(k), v
		},
		"sig_key_file": func(v *config.Decoder) {
			var path string
			v.String(&path)
			b, err := os.ReadFile(path)
			switch {
			case err != nil:
				v.Errorf("%v", err)
			case len(bytes.TrimRight(b, "\r\n")) == 0:
				v.Errorf("%s is empty: requests would be signed with no secret", path)
			}
			// A key file ends with a newline that is not part of the key.
			c.SigKey, fileAt = bytes.TrimRight(b, "\r\n"), v
		},
		"sig_iss": func(v *config.Decoder) { v.String(&c.SigIss) },
	})
	if keyAt != nil && fileAt != nil {
		fileAt.Errorf("excludes sig_key: the key is in the file or in the configuration")
	}
	if c.SigIss != "" && len(c.SigKey) == 0 && keyAt == nil && fileAt == nil {
		d.Errorf("sig_iss needs sig_key or sig_key_file: nothing is signed without a key")
	}
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
