package wsoverhttp

import (
	"bytes"
	"reflect"
	"testing"
)

// TestParse reads bodies as Pushpin's documentation and its client
// libraries write them.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []Event
		err  bool
	}{
		{"open", "OPEN\r\n", []Event{{Type: Open}}, false},
		{"text", "TEXT 5\r\nhello\r\n", []Event{{Type: Text, Content: []byte("hello")}}, false},
		{"several", "OPEN\r\nTEXT 2\r\nhi\r\nBINARY 3\r\n\x00\r\n\r\nPING\r\n",
			[]Event{{Type: Open}, {Type: Text, Content: []byte("hi")}, {Type: Binary, Content: []byte("\x00\r\n")}, {Type: Ping}}, false},
		{"hex length", "TEXT 1a\r\nabcdefghijklmnopqrstuvwxyz\r\n", []Event{{Type: Text, Content: []byte("abcdefghijklmnopqrstuvwxyz")}}, false},
		{"upper hex", "TEXT A\r\n0123456789\r\n", []Event{{Type: Text, Content: []byte("0123456789")}}, false},
		{"empty content", "TEXT 0\r\n\r\n", []Event{{Type: Text, Content: []byte{}}}, false},
		{"close", "CLOSE 2\r\n\x03\xe8\r\n", []Event{{Type: Close, Content: []byte{3, 0xe8}}}, false},
		{"unknown type kept", "FOO\r\n", []Event{{Type: "FOO"}}, false},
		{"empty body", "", nil, false},
		{"no crlf", "OPEN", nil, true},
		{"short content", "TEXT 9\r\nhello\r\n", nil, true},
		{"bad length", "TEXT zz\r\nhello\r\n", nil, true},
		{"negative length", "TEXT -1\r\nhello\r\n", nil, true},
		{"content not followed by crlf", "TEXT 2\r\nhello\r\n", nil, true},
		{"empty type", "\r\n", nil, true},
		{"huge length", "TEXT ffffffffff\r\nx\r\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.body))
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAppendRoundTrip(t *testing.T) {
	var b []byte
	b = Append(b, Open, nil)
	b = Append(b, Text, []byte("κόσμε"))
	b = Append(b, Binary, []byte{0, 0xff, '\r', '\n'})
	b = Append(b, Close, CloseContent(4000, "bye"))
	b = Append(b, Disconnect, nil)
	if !bytes.HasPrefix(b, []byte("OPEN\r\nTEXT a\r\nκόσμε\r\n")) {
		t.Fatalf("encoding: %q", b)
	}
	evs, err := Parse(b)
	if err != nil || len(evs) != 5 {
		t.Fatalf("%v %q", err, evs)
	}
	if code, reason := ParseClose(evs[3].Content); code != 4000 || reason != "bye" {
		t.Fatalf("close: %d %q", code, reason)
	}
	if code, _ := ParseClose(CloseContent(0, "")); code != 0 {
		t.Fatalf("empty close: %d", code)
	}
}

func TestParseGrip(t *testing.T) {
	for _, tc := range []struct {
		h    []string
		want grip
	}{
		{nil, grip{}},
		{[]string{"permessage-deflate"}, grip{}},
		{[]string{"grip"}, grip{on: true, prefix: "m:"}},
		{[]string{`grip; message-prefix=""`}, grip{on: true, prefix: ""}},
		{[]string{`x, GRIP ; message-prefix="msg:"`}, grip{on: true, prefix: "msg:"}},
	} {
		if got := parseGrip(tc.h); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.h, got, tc.want)
		}
	}
}

// FuzzParse: any body parses or fails cleanly, and what parses encodes
// back to an equivalent body.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"OPEN\r\n", "TEXT 5\r\nhello\r\n", "CLOSE 2\r\n\x03\xe8\r\n", "BINARY 0\r\n\r\nDISCONNECT\r\n", "TEXT 9\r\nhi\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := Parse(body)
		if err != nil {
			return
		}
		var out []byte
		for _, ev := range evs {
			out = Append(out, ev.Type, ev.Content)
		}
		again, err := Parse(out)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-encoded body does not parse: %v", err)
		}
		for i := range evs {
			if again[i].Type != evs[i].Type || !bytes.Equal(again[i].Content, evs[i].Content) {
				t.Fatalf("event %d changed: %q -> %q", i, evs[i], again[i])
			}
		}
	})
}
