package notice_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/testkit/testserver"
)

func TestNotice(t *testing.T) {
	s := testserver.Start(t, `
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /old, notice: {text: "moved to wss://chat.example.com/", code: 4001, reason: moved}}
  - {path: /down, notice: {}}
`)
	for _, tc := range []struct {
		path, text string
		code       int
		reason     string
	}{{"/old", "moved to wss://chat.example.com/", 4001, "moved"}, {"/down", "", 1001, ""}} {
		c, _, err := websocket.DefaultDialer.Dial(s.URL(tc.path), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if tc.text != "" {
			if _, p, err := c.ReadMessage(); err != nil || string(p) != tc.text {
				t.Fatalf("%s: %q %v", tc.path, p, err)
			}
		}
		_, _, err = c.ReadMessage()
		ce, ok := err.(*websocket.CloseError)
		if !ok || ce.Code != tc.code || ce.Text != tc.reason {
			t.Fatalf("%s: %v, want close %d %q", tc.path, err, tc.code, tc.reason)
		}
		c.Close()
	}
}

func TestNoticeErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"notice: {code: 999}":                                "n.yaml:3: routes[0].notice.code: must be a number from 1000 to 4999",
		"notice: {code: 1005}":                               "n.yaml:2: routes[0].notice: code 1005 cannot be sent",
		"notice: {color: red}":                               "n.yaml:3: routes[0].notice.color: unknown key",
		"notice: {reason: " + strings.Repeat("x", 124) + "}": "routes[0].notice: reason must be UTF-8 of at most 123 bytes",
	} {
		cfg, err := config.Parse("n.yaml", []byte("routes:\n  - path: /n\n    "+yaml+"\n"))
		if err == nil {
			_, err = cfg.NewGateway(nil)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", yaml, err, want)
		}
	}
}
