package gateway

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"testing"
)

// TestPackedHeader: once the handshake is over (no map), every accessor
// answers from the packed form exactly as http.Header would.
func TestPackedHeader(t *testing.T) {
	h := http.Header{
		"Origin":            {"https://a.example"},
		"X-Forwarded-For":   {"10.0.0.1, 10.0.0.2", "10.0.0.3"},
		"Cookie":            {"a=1; b=2"},
		"User-Agent":        {"Mozilla/5.0 (X11; Linux x86_64)"},
		"Empty":             {""},
		"Upgrade":           {"websocket"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Weird":             {"line\nbreak\x00nul"},
	}
	r := &Request{}
	r.SetHeader(h)
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"Origin", []string{"https://a.example"}},
		{"origin", []string{"https://a.example"}},
		{"x-forwarded-for", []string{"10.0.0.1, 10.0.0.2", "10.0.0.3"}},
		{"COOKIE", []string{"a=1; b=2"}},
		{"Empty", []string{""}},
		{"Sec-WebSocket-Key", []string{"dGhlIHNhbXBsZSBub25jZQ=="}},
		{"Weird", []string{"line break nul"}},
		{"Missing", nil},
		{"A", nil},
		{"Zzz", nil},
	} {
		if got := r.HeaderValues(tc.name); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("HeaderValues(%q) = %q, want %q", tc.name, got, tc.want)
		}
		want := ""
		if len(tc.want) > 0 {
			want = tc.want[0]
		}
		if got := r.HeaderValue(tc.name); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", tc.name, got, want)
		}
	}
	h["Weird"] = []string{"line break nul"}
	if got := r.Header(); !reflect.DeepEqual(got, h) {
		t.Errorf("Header() = %v, want %v", got, h)
	}
	var fwd []string
	r.ForwardHeaders(nil, map[string]bool{"Cookie": true}, func(k string, vs []string) { fwd = append(fwd, k) })
	slices.Sort(fwd)
	if want := []string{"Empty", "Origin", "User-Agent", "Weird", "X-Forwarded-For"}; !reflect.DeepEqual(fwd, want) {
		t.Errorf("ForwardHeaders = %v, want %v", fwd, want)
	}
}

// FuzzPackedHeader: whatever the field names and values, the packed form
// gives back what http.Header holds, values with NUL or LF aside (front
// doors refuse those).
func FuzzPackedHeader(f *testing.F) {
	f.Add("Origin", "https://a", "X-Y", "1")
	f.Add("a-b", "", "A-B", "two")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := http.Header{}
		h.Add(k1, v1)
		h.Add(k2, v2)
		for _, vs := range h {
			for _, v := range vs {
				for _, c := range []byte(v) {
					if c == 0 || c == '\n' {
						return
					}
				}
			}
		}
		for k := range h {
			for _, c := range []byte(k) {
				if c == 0 || c == '\n' {
					return
				}
			}
		}
		r := &Request{}
		r.SetHeader(h)
		for k, vs := range h {
			if got := r.HeaderValues(k); !reflect.DeepEqual(got, vs) {
				t.Fatalf("HeaderValues(%q) = %q, want %q", k, got, vs)
			}
		}
		if got := r.Header(); !reflect.DeepEqual(got, h) {
			t.Fatalf("Header() = %q, want %q", got, h)
		}
	})
}

type keepingHandler struct{ funcHandler }

func (keepingHandler) KeepsHandshakeHeaders() {}

type keepingRestHandler struct{ funcHandler }

func (keepingRestHandler) KeepsRequestHeaders() {}

// TestHandshakeHeadersDropped: what an application sees in OnOpen and
// after: the upgrade's own fields are gone, unless it keeps them (the
// seeds' plugins and programs); the rest stays whole and in order for
// OnOpen, and after it only for an application that keeps them (a
// producer backend); the others' connections keep none.
func TestHandshakeHeadersDropped(t *testing.T) {
	for _, keep := range []string{"none", "handshake", "rest"} {
		var seen http.Header
		fh := funcHandler{connect: func(c *Conn) error { seen = c.Request().Header(); return nil }}
		var h Handler = fh
		switch keep {
		case "handshake":
			h = keepingHandler{fh}
		case "rest":
			h = keepingRestHandler{fh}
		}
		g, err := New(quiet, &Route{Path: "/h", Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		req := upgradeReq("/h")
		extra := http.Header{"Origin": {"http://example.com"}, "User-Agent": {"test/1.0"}, "Cookie": {"a=1", "b=2"}}
		all := http.Header{}
		for k, vs := range extra {
			all[k] = vs
		}
		for k, vs := range req.Header() {
			all[k] = vs
		}
		req.SetHeader(all)
		p, herr := g.Accept(context.Background(), g.Route("/h"), req)
		if herr != nil {
			t.Fatal(herr)
		}
		want := extra
		if keep == "handshake" {
			want = all
		}
		if !reflect.DeepEqual(seen, want) {
			t.Errorf("keep %v: OnOpen saw %v, want %v", keep, seen, want)
		}
		if keep == "none" {
			want = http.Header{}
		}
		if got := req.Header(); !reflect.DeepEqual(got, want) {
			t.Errorf("keep %v: after Accept %v, want %v", keep, got, want)
		}
		p.Abandon()
	}
}
