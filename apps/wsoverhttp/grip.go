package wsoverhttp

import (
	"encoding/json"
	"strings"
)

// GRIP over WebSocket-over-HTTP: an application that answers the OPEN with
// "Sec-WebSocket-Extensions: grip" sends control messages to the gateway
// as TEXT events starting "c:" (JSON), and messages for the client
// starting with the message prefix ("m:" unless the extension's
// message-prefix parameter says otherwise), which is removed.

// grip is a connection's GRIP state, fixed by the answer to its OPEN.
type grip struct {
	on     bool
	prefix string
}

// parseGrip reads the grip extension from Sec-WebSocket-Extensions values.
func parseGrip(values []string) grip {
	for _, v := range values {
		for _, ext := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(ext, ";")
			if !strings.EqualFold(strings.TrimSpace(name), "grip") {
				continue
			}
			g := grip{on: true, prefix: "m:"}
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "message-prefix") {
					g.prefix = strings.Trim(strings.TrimSpace(val), `"`)
				}
			}
			return g
		}
	}
	return grip{}
}

// control is a GRIP control message. Only the fields of the types served
// are read (docs/websocket-over-http.md).
type control struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Name    string `json:"name"`
	Value   string `json:"value"`
}

// parseControl decodes the JSON of a control message ("c:" removed).
func parseControl(b []byte) (control, error) {
	var c control
	err := json.Unmarshal(b, &c)
	return c, err
}
