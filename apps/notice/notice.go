// Package notice is a kind of application that tells every client one
// thing and closes: an endpoint that has moved ("reconnect to
// wss://chat.example.com/"), or one down for maintenance. Clients of a
// WebSocket cannot follow an HTTP redirect, but they read a message and a
// close code.
//
//	routes:
//	  - path: /old-chat
//	    notice: {text: "moved to wss://chat.example.com/", code: 4001, reason: moved}
//
// It is also the smallest complete kind of application: one package that
// decodes its own keys, checks them in Validate, and registers itself.
package notice

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

func init() {
	config.RegisterKind(config.Kind{
		Key: "notice",
		Doc: "tells every client a message and closes: notice: {text: TEXT, code: 1001, reason: REASON}",
		Decode: func(d *config.Decoder) gateway.Handler {
			n := &Notice{Code: websocket.StatusGoingAway}
			d.Fields(map[string]func(*config.Decoder){
				"text":   func(v *config.Decoder) { v.String(&n.Text) },
				"reason": func(v *config.Decoder) { v.String(&n.Reason) },
				"code": func(v *config.Decoder) {
					var code int
					v.Int(1000, 4999, &code)
					n.Code = websocket.StatusCode(code)
				},
			})
			return n
		},
	})
}

// Notice sends Text (if any) to every client, then closes it with Code and
// Reason.
type Notice struct {
	Text   string
	Code   websocket.StatusCode
	Reason string
}

// Validate checks that the close frame can be sent: a code an endpoint may
// send (RFC 6455 §7.4) and a reason that fits a control frame.
func (n *Notice) Validate() error {
	switch c := n.Code; {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014, c >= 3000 && c <= 4999:
	default:
		return fmt.Errorf("code %d cannot be sent in a close frame", n.Code)
	}
	if len(n.Reason) > 123 || !utf8.ValidString(n.Reason) {
		return fmt.Errorf("reason must be UTF-8 of at most 123 bytes")
	}
	return nil
}

// OnOpen accepts the client and queues the notice and the close: they
// follow the 101.
func (n *Notice) OnOpen(_ context.Context, c *gateway.Conn) error {
	if n.Text != "" {
		c.SendText(n.Text)
	}
	return c.Close(n.Code, n.Reason)
}

func (*Notice) OnMessage(*gateway.Conn, gateway.Message)     {}
func (*Notice) OnClose(*gateway.Conn, websocket.CloseStatus) {}
