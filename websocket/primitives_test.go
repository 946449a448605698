package websocket

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func maskBytewise(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

func TestMaskMatchesBytewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200; n++ {
		for pos := 0; pos < 4; pos++ {
			var key [4]byte
			binary.LittleEndian.PutUint32(key[:], rng.Uint32())
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			want := append([]byte(nil), data...)
			wp := maskBytewise(key, pos, want)
			gp := mask(binary.LittleEndian.Uint32(key[:]), pos, data)
			if !bytes.Equal(data, want) || gp != wp {
				t.Fatalf("n=%d pos=%d: mask differs from the bytewise reference", n, pos)
			}
		}
	}
}

func TestMaskInPieces(t *testing.T) {
	// Unmasking a payload in arbitrary pieces equals unmasking it at once.
	key := [4]byte{1, 2, 3, 4}
	k := binary.LittleEndian.Uint32(key[:])
	data := bytes.Repeat([]byte("abcdefghij"), 50)
	want := append([]byte(nil), data...)
	maskBytewise(key, 0, want)
	got := append([]byte(nil), data...)
	pos := 0
	for off := 0; off < len(got); {
		n := min(1+off%37, len(got)-off)
		pos = mask(k, pos, got[off:off+n])
		off += n
	}
	if !bytes.Equal(got, want) {
		t.Fatal("piecewise unmasking differs")
	}
}

var utf8Cases = []struct {
	in    string
	valid bool
}{
	{"", true}, {"hello", true}, {"κόσμε", true}, {"\u0080", true}, {"\u07ff", true}, {"\u0800", true},
	{"\uffff", true}, {"\U00010000", true}, {"\U0010ffff", true}, {"\ufeff", true},
	{"\xed\x9f\xbf", true}, {"\xee\x80\x80", true},
	{"\x80", false}, {"\xbf", false}, {"\xc0\x80", false}, {"\xc1\xbf", false}, {"\xe0\x80\xaf", false},
	{"\xe0\x9f\xbf", false}, {"\xf0\x8f\xbf\xbf", false}, {"\xed\xa0\x80", false}, {"\xed\xbf\xbf", false},
	{"\xf4\x90\x80\x80", false}, {"\xf5\x80\x80\x80", false}, {"\xf8\x88\x80\x80\x80", false},
	{"\xfe", false}, {"\xff", false}, {"\xc2", false}, {"\xe2\x82", false}, {"a\xc2b", false},
	{"\xf0\x90\x80", false}, {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", false},
}

func TestUTF8Table(t *testing.T) {
	for _, tc := range utf8Cases {
		for split := 0; split <= len(tc.in); split++ {
			var v utf8Validator
			ok := v.write([]byte(tc.in[:split])) && v.write([]byte(tc.in[split:])) && v.complete()
			if ok != tc.valid {
				t.Errorf("%q split at %d: valid=%v, want %v", tc.in, split, ok, tc.valid)
			}
		}
	}
}

// FuzzUTF8 checks the incremental validator against the standard library
// for any input cut into any two chunks, and that an invalid prefix is
// reported no later than the chunk holding the bad byte.
func FuzzUTF8(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add([]byte(tc.in), uint8(len(tc.in)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		c := int(cut) % (len(data) + 1)
		var v utf8Validator
		ok1 := v.write(data[:c])
		ok := ok1 && v.write(data[c:]) && v.complete()
		if ok != utf8.Valid(data) {
			t.Fatalf("%q cut at %d: incremental=%v, utf8.Valid=%v", data, c, ok, utf8.Valid(data))
		}
		// Fail fast: if the first chunk cannot be the prefix of valid UTF-8,
		// the validator must say so after the first chunk.
		if ok1 && !validPrefix(data[:c]) {
			t.Fatalf("%q: first chunk %q accepted though no continuation can make it valid", data, data[:c])
		}
	})
}

// validPrefix reports whether some continuation makes p valid UTF-8.
func validPrefix(p []byte) bool {
	for _, tail := range []string{"", "\x80", "\x80\x80", "\x80\x80\x80", "\xa0\x80", "\x90\x80\x80", "\xbf", "\xbf\xbf", "\xbf\xbf\xbf"} {
		if utf8.Valid(append(append([]byte(nil), p...), tail...)) {
			return true
		}
	}
	return false
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 1 << 24} {
		var b [maxHeaderSize]byte
		hn := putHeader(&b, true, 0, opBinary, n)
		if hn != headerSize(b[1]) || hn+n != frameSize(n) {
			t.Fatalf("n=%d: header size %d, headerSize %d, frameSize %d", n, hn, headerSize(b[1]), frameSize(n))
		}
		h := decodeHeader(b[:hn])
		if !h.fin || h.op != opBinary || h.length != int64(n) || h.masked {
			t.Fatalf("n=%d: decoded %+v", n, h)
		}
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 §1.3.
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("acceptKey = %q", got)
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestCheckUpgrade(t *testing.T) {
	good := func(extra ...string) http.Header {
		h := hdr("Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version", "13")
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == "-" {
				h.Del(extra[i])
			} else {
				h.Set(extra[i], extra[i+1])
			}
		}
		return h
	}
	cases := []struct {
		name    string
		method  string
		minor   int
		host    string
		h       http.Header
		status  int
		version int
		protos  []string
		origin  string
	}{
		{name: "valid", h: good(), version: 13},
		{name: "version 8", h: good("Sec-WebSocket-Version", "8"), version: 8},
		{name: "version 7 origin header", h: good("Sec-WebSocket-Version", "7", "Sec-WebSocket-Origin", "http://a", "Origin", "http://b"), version: 7, origin: "http://a"},
		{name: "version 13 origin header", h: good("Sec-WebSocket-Origin", "http://a", "Origin", "http://b"), version: 13, origin: "http://b"},
		{name: "POST", method: "POST", h: good(), status: 400},
		{name: "HEAD", method: "HEAD", h: good(), status: 400},
		{name: "HTTP/1.0", minor: -1, h: good(), status: 400},
		{name: "no host", host: "-", h: good(), status: 400},
		{name: "no key", h: good("Sec-WebSocket-Key", "-"), status: 400},
		{name: "short key", h: good("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ="), status: 400},
		{name: "key of 15 bytes", h: good("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ==="), status: 400},
		{name: "key last char not AQgw", h: good("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZB=="), status: 400},
		{name: "key with bad char", h: good("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q=="), status: 400},
		{name: "key 17 bytes", h: good("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQAA"), status: 400},
		{name: "version 12", h: good("Sec-WebSocket-Version", "12"), status: 400},
		{name: "version 013", h: good("Sec-WebSocket-Version", "013"), status: 400},
		{name: "version +13", h: good("Sec-WebSocket-Version", "+13"), status: 400},
		{name: "version list", h: good("Sec-WebSocket-Version", "13, 8"), status: 400},
		{name: "no version", h: good("Sec-WebSocket-Version", "-"), status: 400},
		{name: "protocols", h: good("Sec-WebSocket-Protocol", "chat, superchat"), version: 13, protos: []string{"chat", "superchat"}},
		{name: "protocols with empty items", h: good("Sec-WebSocket-Protocol", ", chat,,x ,"), version: 13, protos: []string{"chat", "x"}},
		{name: "protocols only commas", h: good("Sec-WebSocket-Protocol", " , ,"), status: 400},
		{name: "protocols empty", h: good("Sec-WebSocket-Protocol", ""), status: 400},
		{name: "protocol with space", h: good("Sec-WebSocket-Protocol", "a b"), status: 400},
		{name: "protocol with slash", h: good("Sec-WebSocket-Protocol", "a/b"), status: 400},
		{name: "body by Content-Length", h: good("Content-Length", "5"), status: 400},
		{name: "empty body is no body", h: good("Content-Length", "0"), version: 13},
		{name: "body by Transfer-Encoding", h: good("Transfer-Encoding", "chunked"), status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com", Header: tc.h}
			if tc.method != "" {
				r.Method = tc.method
			}
			if tc.minor < 0 {
				r.ProtoMinor = 0
			}
			if tc.host == "-" {
				r.Host = ""
			}
			hs, err := checkUpgrade(r)
			if tc.status != 0 {
				if err == nil || err.Status != tc.status {
					t.Fatalf("err = %v, want status %d", err, tc.status)
				}
				if strings.HasPrefix(tc.name, "version") || tc.name == "no version" {
					if got := err.Header.Get("Sec-WebSocket-Version"); got != "13,8,7" {
						t.Fatalf("Sec-WebSocket-Version = %q, want 13,8,7", got)
					}
				} else if err.Header != nil {
					t.Fatalf("unexpected headers %v", err.Header)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if hs.Version != tc.version || strings.Join(hs.Protocols, ",") != strings.Join(tc.protos, ",") || hs.Origin != tc.origin {
				t.Fatalf("got %+v", hs)
			}
		})
	}
}

func TestIsUpgrade(t *testing.T) {
	cases := []struct {
		conn, up string
		want     bool
	}{
		{"Upgrade", "websocket", true},
		{"keep-alive, Upgrade", "WebSocket", true},
		{"upgrade", "WEBSOCKET", true},
		{"keep-alive,  upgrade ;x=1", "websocket", true},
		{"keep-alive", "websocket", false},
		{"Upgrade", "h2c", false},
		{"Upgrade", "", false},
		{"", "websocket", false},
		{"Upgraded", "websocket", false},
	}
	for _, tc := range cases {
		if got := IsUpgrade(hdr("Connection", tc.conn, "Upgrade", tc.up)); got != tc.want {
			t.Errorf("Connection %q Upgrade %q: %v, want %v", tc.conn, tc.up, got, tc.want)
		}
	}
}

// FuzzCheckUpgrade feeds arbitrary header values to the handshake checks:
// they must never panic, and whatever they accept must satisfy the rules.
func FuzzCheckUpgrade(f *testing.F) {
	f.Add("GET", "dGhlIHNhbXBsZSBub25jZQ==", "13", "chat, superchat", "Upgrade", "websocket")
	f.Add("GET", "x", "8", ",,", "keep-alive, upgrade", "WebSocket")
	f.Add("HEAD", "AAAAAAAAAAAAAAAAAAAAAA==", "7", "a b", "upgrade;q", "websocket, h2c")
	f.Fuzz(func(t *testing.T, method, key, version, protos, conn, up string) {
		h := hdr("Sec-WebSocket-Key", key, "Sec-WebSocket-Version", version, "Sec-WebSocket-Protocol", protos, "Connection", conn, "Upgrade", up)
		IsUpgrade(h)
		hs, err := checkUpgrade(&http.Request{Method: method, ProtoMajor: 1, ProtoMinor: 1, Host: "h", Header: h})
		if err != nil {
			if err.Status != 400 {
				t.Fatalf("status %d", err.Status)
			}
			return
		}
		if method != "GET" || !validKey(key) || (hs.Version != 13 && hs.Version != 8 && hs.Version != 7) {
			t.Fatalf("accepted method=%q key=%q version=%q", method, key, version)
		}
		for _, p := range hs.Protocols {
			if p == "" || strings.ContainsAny(p, " ,\t") {
				t.Fatalf("bad protocol token %q", p)
			}
		}
		hdr, herr := hs.Header(nil, "")
		if herr != nil {
			t.Fatal(herr)
		}
		resp := string(hs.AppendResponse(nil, hdr))
		if !strings.HasPrefix(resp, "HTTP/1.1 101 ") || !strings.HasSuffix(resp, "\r\n\r\n") {
			t.Fatalf("bad response %q", resp)
		}
	})
}
