// Package publish is Pushpin's HTTP publishing API over the gateway's
// rooms: an application pushes a message to a channel from any HTTP
// client, and every WebSocket subscribed to it (a room of that name, on
// any route) receives it, on every process of the bus. WebSocket-over-HTTP
// applications subscribe their clients with GRIP's subscribe control
// message; producers and Go handlers join rooms as they always do.
//
//	POST /publish/
//	{"items": [{"channel": "lobby", "formats": {"ws-message": {"content": "hi"}}}]}
//
// "content-bin" (base64) sends a binary message. As Pushpin does, a format
// may also be a key of the item itself, as pubcontrol's libraries write
// it: {"channel": "lobby", "ws-message": {"content": "hi"}}. An item with
// no ws-message is an error, naming the item, never a 200 that delivers
// nothing: Pushpin's HTTP formats (http-stream, http-response) have no
// subscribers here, so an item with only those is refused; one that has a
// ws-message too delivers it. id and prev-id are checked (strings) and not
// used: a gateway without a message history has nothing to order against.
package publish

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/wsgate/wsgate/websocket"
)

// MaxBody bounds a publish request.
const MaxBody = 16 << 20

// wsMessage is the ws-message format.
type wsMessage struct {
	Content    *string `json:"content"`
	ContentBin *string `json:"content-bin"`
}

// formatNames are Pushpin's formats.
var formatNames = []string{"ws-message", "http-response", "http-stream"}

// message is what an item sends.
type message struct {
	channel string
	typ     websocket.MessageType
	data    []byte
}

// Parse decodes a publish body: every item, or an error naming the first
// bad one. Nothing is sent for a body with an error.
func Parse(body []byte) ([]message, error) {
	var req struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("not a publish request: %v", err)
	}
	if len(req.Items) == 0 {
		return nil, fmt.Errorf("no items")
	}
	var out []message
	for i, it := range req.Items {
		var channel string
		if err := json.Unmarshal(it["channel"], &channel); err != nil || channel == "" {
			return nil, fmt.Errorf("item %d has no channel", i)
		}
		for _, k := range []string{"id", "prev-id"} {
			if raw, ok := it[k]; ok {
				var v string
				if json.Unmarshal(raw, &v) != nil {
					return nil, fmt.Errorf("item %d: %s is not a string", i, k)
				}
			}
		}
		// The formats: under "formats", or at the item's top level.
		formats := map[string]json.RawMessage{}
		if raw, ok := it["formats"]; ok {
			if err := json.Unmarshal(raw, &formats); err != nil {
				return nil, fmt.Errorf("item %d: formats is not an object", i)
			}
		}
		for _, f := range formatNames {
			if raw, ok := it[f]; ok {
				formats[f] = raw
			}
		}
		raw, ok := formats["ws-message"]
		if !ok {
			for _, f := range []string{"http-response", "http-stream"} {
				if _, ok := formats[f]; ok {
					return nil, fmt.Errorf("item %d (channel %s) has only HTTP formats (%s): this gateway delivers ws-message to WebSockets, and an HTTP format alone would reach nobody", i, channel, f)
				}
			}
			return nil, fmt.Errorf("item %d (channel %s) has no ws-message format", i, channel)
		}
		var ws wsMessage
		if err := json.Unmarshal(raw, &ws); err != nil {
			return nil, fmt.Errorf("item %d: ws-message is not an object: %v", i, err)
		}
		it := struct{ Channel string }{channel}
		switch {
		case ws.Content != nil:
			out = append(out, message{it.Channel, websocket.TextMessage, []byte(*ws.Content)})
		case ws.ContentBin != nil:
			b, err := base64.StdEncoding.DecodeString(*ws.ContentBin)
			if err != nil {
				return nil, fmt.Errorf("item %d: content-bin is not base64: %v", i, err)
			}
			out = append(out, message{it.Channel, websocket.BinaryMessage, b})
		default:
			return nil, fmt.Errorf("item %d: ws-message has neither content nor content-bin", i)
		}
	}
	return out, nil
}

// Publisher sends a message to a room on every route and process:
// gateway.Gateway's Publish.
type Publisher func(room string, typ websocket.MessageType, data []byte) int

// Apply carries out a publish request's body, and says how to answer it:
// 200 "Published", or 400 with what is wrong (nothing is sent then).
func Apply(body []byte, pub Publisher) (status int, answer string) {
	msgs, err := Parse(body)
	if err != nil {
		return http.StatusBadRequest, err.Error() + "\n"
	}
	for _, m := range msgs {
		pub(m.channel, m.typ, m.data)
	}
	return http.StatusOK, "Published\n"
}

// Handler serves the publish endpoint.
func Handler(pub Publisher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "publish with POST", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			http.Error(w, "request body over 16 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		status, answer := Apply(body, pub)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	})
}
