package httptoken

import (
	"net/http"
	"reflect"
	"testing"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"chat", []string{"chat"}, false},
		{"chat, superchat", []string{"chat", "superchat"}, false},
		{" a ,\tb\t, ,,c ", []string{"a", "b", "c"}, false}, // empty elements skipped (RFC 9110 §5.6.1)
		{"v1.json+x~!#$%&'*^_`|", []string{"v1.json+x~!#$%&'*^_`|"}, false},
		{"a b", nil, true}, // a space inside an element
		{"a;q=1", nil, true},
		{"chat, \"quoted\"", nil, true},
		{"é", nil, true},
	} {
		got, err := ParseList(tc.in)
		if (err != "") != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseList(%q) = %q, %q", tc.in, got, err)
		}
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{"": false, "Sec-WebSocket-Protocol": true, "a b": false, "a:b": false, "x\x7f": false, "~": true} {
		if IsToken(s) != want {
			t.Errorf("IsToken(%q) = %v", s, !want)
		}
	}
}

func TestHasToken(t *testing.T) {
	h := http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"h2c", "WebSocket ; x=1"}}
	for _, tc := range []struct {
		name, token string
		want        bool
	}{
		{"connection", "upgrade", true},
		{"Connection", "close", false},
		{"upgrade", "websocket", true}, // a second line, params and case ignored
		{"Upgrade", "web", false},
		{"Missing", "x", false},
	} {
		if got := HasToken(h, tc.name, tc.token); got != tc.want {
			t.Errorf("HasToken(%s, %s) = %v", tc.name, tc.token, got)
		}
	}
}

func TestValidValue(t *testing.T) {
	for v, want := range map[string]bool{"plain value": true, "tab\tok": true, "": true, "cr\rlf": false, "nl\n": false, "nul\x00": false, "del\x7f": false, "utf-8 é": true} {
		if ValidValue(v) != want {
			t.Errorf("ValidValue(%q) = %v", v, !want)
		}
	}
}
