package publish

import (
	"reflect"
	"testing"

	"github.com/wsgate/wsgate/websocket"
)

// TestParse reads publish requests as Pushpin's documentation and the
// gripcontrol libraries write them.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []message
		err  bool
	}{
		{"text", `{"items":[{"channel":"test","formats":{"ws-message":{"content":"hello"}}}]}`,
			[]message{{"test", websocket.TextMessage, []byte("hello")}}, false},
		{"binary", `{"items":[{"channel":"b","formats":{"ws-message":{"content-bin":"AAH/"}}}]}`,
			[]message{{"b", websocket.BinaryMessage, []byte{0, 1, 0xff}}}, false},
		{"several, with ids and other formats", `{"items":[
			{"channel":"a","id":"1","prev-id":"0","formats":{"ws-message":{"content":"x"},"http-stream":{"content":"x\n"}}},
			{"channel":"c","formats":{"ws-message":{"content":""}}}]}`,
			[]message{{"a", websocket.TextMessage, []byte("x")}, {"c", websocket.TextMessage, []byte{}}}, false},
		// pubcontrol's libraries (and Pushpin's PublishItem::fromVariant)
		// put the formats at the item's top level.
		{"pubcontrol's form", `{"items":[{"channel":"c","ws-message":{"content":"x"}},{"channel":"d","id":"7","ws-message":{"content-bin":"AAE="}}]}`,
			[]message{{"c", websocket.TextMessage, []byte("x")}, {"d", websocket.BinaryMessage, []byte{0, 1}}}, false},
		{"only an HTTP format", `{"items":[{"channel":"a","formats":{"http-response":{"body":"y"}}}]}`, nil, true},
		{"no known format", `{"items":[{"channel":"a","formats":{"smoke-signal":{}}}]}`, nil, true},
		{"id not a string", `{"items":[{"channel":"a","id":7,"ws-message":{"content":"x"}}]}`, nil, true},
		{"not json", `items`, nil, true},
		{"no items", `{"items":[]}`, nil, true},
		{"no channel", `{"items":[{"formats":{"ws-message":{"content":"x"}}}]}`, nil, true},
		{"bad base64", `{"items":[{"channel":"b","formats":{"ws-message":{"content-bin":"%%"}}}]}`, nil, true},
		{"empty ws-message", `{"items":[{"channel":"b","formats":{"ws-message":{}}}]}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.body))
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"items":[{"channel":"test","formats":{"ws-message":{"content":"hello"}}}]}`))
	f.Add([]byte(`{"items":[{"channel":"b","formats":{"ws-message":{"content-bin":"AAH/"}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := Parse(body)
		if err == nil {
			for _, m := range msgs {
				if m.channel == "" {
					t.Fatal("a message without a channel")
				}
			}
		}
	})
}
