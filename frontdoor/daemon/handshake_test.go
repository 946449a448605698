package daemon_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestHandshake runs raw opening handshakes against the daemon and checks
// the status line and headers, rule by rule (apache-websocket's
// mod_websocket_method_handler order; see seed-modules.md §1.3).
func TestHandshake(t *testing.T) {
	ts := start(t, baseConfig+`
  - path: /same
    app: echo
  - path: /trusted
    app: echo
    origin_check: trusted
    trusted_origins: [https://app.example, "http://localhost:3000"]
  - path: /off
    app: echo
    origin_check: off
  - path: /proxied
    app: echo
    trusted_proxies: [127.0.0.1]
  - path: /proxied-rfc7239
    app: echo
    trusted_proxies: [127.0.0.1]
    client_ip_header: forwarded
  - path: /public
    app: echo
    public_origin: https://ws.example.com
  - path: /subproto
    app: echo
    subprotocols: [v2.chat, v1.chat]
`)
	port := ts.Addr[strings.LastIndex(ts.Addr, ":")+1:]
	host := "Host: 127.0.0.1:" + port
	self := "http://127.0.0.1:" + port
	cases := []struct {
		name    string
		raw     string
		status  int
		headers map[string]string // "" value: header must be absent
	}{
		{name: "valid", raw: ws.Request("/echo", host), status: 101, headers: map[string]string{
			"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Protocol": ""}},
		{name: "Connection token list", raw: ws.Request("/echo", host, "Connection: keep-alive, Upgrade"), status: 101},
		{name: "Upgrade any case", raw: ws.Request("/echo", host, "Upgrade: WebSocket"), status: 101},
		{name: "version 8", raw: ws.Request("/echo", host, "Sec-WebSocket-Version: 8"), status: 101},
		{name: "version 7", raw: ws.Request("/echo", host, "Sec-WebSocket-Version: 7"), status: 101},
		{name: "prefix route", raw: ws.Request("/prefix/a/b?x=1", host), status: 101},
		{name: "not an upgrade falls through to 426", raw: "GET /echo HTTP/1.1\r\n" + host + "\r\n\r\n", status: 426, headers: map[string]string{"Upgrade": "websocket"}},
		{name: "upgrade to something else falls through", raw: ws.Request("/echo", host, "Upgrade: h2c"), status: 426},
		{name: "unknown path", raw: ws.Request("/nowhere", host), status: 404},
		{name: "demo page", raw: "GET / HTTP/1.1\r\n" + host + "\r\n\r\n", status: 200},
		{name: "POST", raw: strings.Replace(ws.Request("/echo", host), "GET", "POST", 1), status: 400},
		{name: "HEAD", raw: strings.Replace(ws.Request("/echo", host), "GET", "HEAD", 1), status: 400},
		{name: "HTTP/1.0", raw: strings.Replace(ws.Request("/echo", host), "HTTP/1.1", "HTTP/1.0", 1), status: 400},
		{name: "no Host", raw: ws.Request("/echo", "-Host"), status: 400},
		{name: "no key", raw: ws.Request("/echo", host, "-Sec-WebSocket-Key"), status: 400},
		{name: "key too short", raw: ws.Request("/echo", host, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ="), status: 400},
		{name: "key not 16 bytes", raw: ws.Request("/echo", host, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="), status: 400},
		{name: "version 12", raw: ws.Request("/echo", host, "Sec-WebSocket-Version: 12"), status: 400, headers: map[string]string{"Sec-WebSocket-Version": "13,8,7"}},
		{name: "no version", raw: ws.Request("/echo", host, "-Sec-WebSocket-Version"), status: 400, headers: map[string]string{"Sec-WebSocket-Version": "13,8,7"}},
		{name: "invalid protocol list", raw: ws.Request("/echo", host, "Sec-WebSocket-Protocol: a b"), status: 400},
		{name: "empty protocol list", raw: ws.Request("/echo", host, "Sec-WebSocket-Protocol: , ,"), status: 400},
		{name: "no subprotocol chosen by default", raw: ws.Request("/echo", host, "Sec-WebSocket-Protocol: chat"), status: 101, headers: map[string]string{"Sec-WebSocket-Protocol": ""}},
		{name: "route subprotocols: first offered that the route speaks", raw: ws.Request("/subproto", host, "Sec-WebSocket-Protocol: v1.chat, v2.chat"), status: 101, headers: map[string]string{"Sec-WebSocket-Protocol": "v1.chat"}},
		{name: "route subprotocols: none in common", raw: ws.Request("/subproto", host, "Sec-WebSocket-Protocol: v3.chat"), status: 101, headers: map[string]string{"Sec-WebSocket-Protocol": ""}},
		{name: "application selects subprotocol and sets a header", raw: ws.Request("/hello", host, "Sec-WebSocket-Protocol: a, b", "X-Choose-Subprotocol: b"), status: 101, headers: map[string]string{"Sec-WebSocket-Protocol": "b", "X-Debug-Header": "true"}},
		{name: "application selects an unoffered subprotocol", raw: ws.Request("/hello", host, "Sec-WebSocket-Protocol: a", "X-Choose-Subprotocol: c"), status: 500},
		{name: "application refuses", raw: ws.Request("/hello", host, "X-Refuse-Connection: 1"), status: 403},
		{name: "dumb-increment without its protocol", raw: ws.Request("/dumb-increment", host), status: 403},
		{name: "dumb-increment with its protocol", raw: ws.Request("/dumb-increment", host, "Sec-WebSocket-Protocol: x, dumb-increment-protocol"), status: 101, headers: map[string]string{"Sec-WebSocket-Protocol": "dumb-increment-protocol"}},
		// Origin policy.
		{name: "same: no Origin", raw: ws.Request("/same", host), status: 101},
		{name: "same: matching", raw: ws.Request("/same", host, "Origin: "+self), status: 101},
		{name: "same: other host", raw: ws.Request("/same", host, "Origin: http://evil.example"), status: 403},
		{name: "same: other port", raw: ws.Request("/same", host, "Origin: http://127.0.0.1:1"), status: 403},
		{name: "same: other scheme", raw: ws.Request("/same", host, "Origin: https://127.0.0.1:"+port), status: 403},
		{name: "same: case-sensitive like apache", raw: ws.Request("/same", host, "Origin: HTTP://127.0.0.1:"+port), status: 403},
		{name: "same: host header case folded", raw: ws.Request("/same", "Host: LOCALHOST:"+port, "Origin: http://localhost:"+port), status: 101},
		{name: "same: default port omitted", raw: ws.Request("/same", "Host: example.com:80", "Origin: http://example.com"), status: 101},
		{name: "same: version 7 reads Sec-WebSocket-Origin", raw: ws.Request("/same", host, "Sec-WebSocket-Version: 7", "Sec-WebSocket-Origin: http://evil.example", "Origin: "+self), status: 403},
		{name: "same: version 7 ignores Origin", raw: ws.Request("/same", host, "Sec-WebSocket-Version: 7", "Origin: http://evil.example"), status: 101},
		{name: "trusted: listed", raw: ws.Request("/trusted", host, "Origin: https://app.example"), status: 101},
		{name: "trusted: second entry", raw: ws.Request("/trusted", host, "Origin: http://localhost:3000"), status: 101},
		{name: "trusted: not listed", raw: ws.Request("/trusted", host, "Origin: "+self), status: 403},
		{name: "trusted: no Origin", raw: ws.Request("/trusted", host), status: 101},
		{name: "off", raw: ws.Request("/off", host, "Origin: http://evil.example"), status: 101},
		{name: "proxy: Forwarded", raw: ws.Request("/proxied-rfc7239", host, "Origin: https://public.example", `Forwarded: for=192.0.2.1;proto=https;host="public.example", for=10.0.0.1`), status: 101},
		{name: "proxy: X-Forwarded", raw: ws.Request("/proxied", host, "Origin: https://public.example:8443", "X-Forwarded-Proto: https", "X-Forwarded-Host: public.example:8443"), status: 101},
		// The header the route does not take from its proxies is the
		// client's own: ignored.
		{name: "proxy: Forwarded not the route's header", raw: ws.Request("/proxied", host, "Origin: https://public.example", `Forwarded: for=192.0.2.1;proto=https;host="public.example"`), status: 403},
		{name: "proxy: X-Forwarded not the route's header", raw: ws.Request("/proxied-rfc7239", host, "Origin: https://public.example:8443", "X-Forwarded-Proto: https", "X-Forwarded-Host: public.example:8443"), status: 403},
		{name: "proxy: forwarded mismatch", raw: ws.Request("/proxied", host, "Origin: https://evil.example", "X-Forwarded-Proto: https", "X-Forwarded-Host: public.example"), status: 403},
		{name: "untrusted peer: Forwarded ignored", raw: ws.Request("/same", host, "Origin: https://public.example", "X-Forwarded-Proto: https", "X-Forwarded-Host: public.example"), status: 403},
		{name: "public origin", raw: ws.Request("/public", host, "Origin: https://ws.example.com"), status: 101},
		{name: "public origin mismatch", raw: ws.Request("/public", host, "Origin: "+self), status: 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ws.Dial(ts.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			resp, err := c.Handshake(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d", resp.Status, tc.status)
			}
			for k, want := range tc.headers {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tc.status == 101 && resp.Header.Get("Content-Length") != "" {
				t.Error("101 carries Content-Length")
			}
		})
	}
}

func TestDemoPage(t *testing.T) {
	ts := start(t, baseConfig)
	resp, err := http.Get("http://" + ts.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`"echo":"/echo"`, `"dumb-increment":"/dumb-increment"`, `"chat":"/chat"`, "dumb-increment-protocol", "new WebSocket("} {
		if !strings.Contains(page, want) {
			t.Errorf("demo page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script src") || strings.Contains(page, "<link") {
		t.Error("demo page loads external resources")
	}
}

// TestHeaderSpelling: the 101 and a version refusal spell the protocol's
// header fields as RFC 6455 does (Sec-WebSocket-Protocol), byte for byte,
// as httpd's modules, gorilla and coder do; Go's canonical form
// (Sec-Websocket-Protocol) broke byte-exact clients.
func TestHeaderSpelling(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
routes: [{path: /chat, app: echo, subprotocols: [chat.v1], deflate: true}]
`)
	raw := func(req string) string {
		nc, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, req)
		var head []byte
		buf := make([]byte, 1)
		for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
			if _, err := nc.Read(buf); err != nil {
				break
			}
			head = append(head, buf[0])
		}
		return string(head)
	}
	ok := raw("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.v1\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
	for _, want := range []string{"HTTP/1.1 101 Switching Protocols\r\n", "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
		"\r\nSec-WebSocket-Protocol: chat.v1\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate"} {
		if !strings.Contains(ok, want) {
			t.Errorf("the 101 lacks %q:\n%s", want, ok)
		}
	}
	bad := raw("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n")
	if !strings.Contains(bad, "\r\nSec-WebSocket-Version: 13") {
		t.Errorf("the version refusal lacks Sec-WebSocket-Version spelt as the RFC does:\n%s", bad)
	}
}
