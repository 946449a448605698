package websocket

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// ruleCase is one protocol rule on raw frames: what the client sends, the
// messages the application must see, and the frames the server must answer
// with (close codes, pongs).
type ruleCase struct {
	name  string
	opts  Options
	in    []byte
	msgs  []msg
	pongs []string // payloads of pongs the server must send
	close uint16   // code of the server's close frame; 0 means none
}

func textMsg(s string) msg    { return msg{opText, s} }
func binMsg(s string) msg     { return msg{opBinary, s} }
func frame(f ws.Frame) []byte { return f.Bytes() }

func TestFrameRules(t *testing.T) {
	long := strings.Repeat("a", 126)
	cases := []ruleCase{
		{name: "text message", in: ws.Text("Hello"), msgs: []msg{textMsg("Hello")}},
		{name: "binary message", in: ws.Binary([]byte{0, 1, 2, 255}), msgs: []msg{binMsg("\x00\x01\x02\xff")}},
		{name: "empty text", in: ws.Text(""), msgs: []msg{textMsg("")}},
		{name: "16-bit length", in: ws.Text(strings.Repeat("x", 300)), msgs: []msg{textMsg(strings.Repeat("x", 300))}},
		{name: "64-bit length", in: ws.Binary(bytes.Repeat([]byte{7}, 70000)), msgs: []msg{binMsg(string(bytes.Repeat([]byte{7}, 70000)))}},
		{name: "zero mask key", in: frame(ws.Frame{Fin: true, Op: ws.OpText, Masked: true, Mask: [4]byte{}, Payload: []byte("zero")}), msgs: []msg{textMsg("zero")}},
		{name: "two messages in one read", in: ws.Concat(ws.Text("a"), ws.Binary([]byte("b"))), msgs: []msg{textMsg("a"), binMsg("b")}},

		// RFC 6455 §5.1: client frames must be masked.
		{name: "unmasked text", in: frame(ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte("x")}), close: 1002},
		{name: "unmasked close", in: frame(ws.Frame{Fin: true, Op: ws.OpClose}), close: 1002},
		// §5.2: RSV bits need a negotiated extension.
		{name: "rsv1", in: frame(ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpText, Masked: true, Payload: []byte("x")}), close: 1002},
		{name: "rsv2", in: frame(ws.Frame{Fin: true, RSV: 0x20, Op: ws.OpText, Masked: true, Payload: []byte("x")}), close: 1002},
		{name: "rsv3", in: frame(ws.Frame{Fin: true, RSV: 0x10, Op: ws.OpText, Masked: true, Payload: []byte("x")}), close: 1002},
		{name: "rsv on ping", in: frame(ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpPing, Masked: true}), close: 1002},
		// §5.5: control frames are final and at most 125 bytes.
		{name: "fragmented ping", in: frame(ws.Frame{Fin: false, Op: ws.OpPing, Masked: true, Payload: []byte("x")}), close: 1002},
		{name: "fragmented close", in: frame(ws.Frame{Fin: false, Op: ws.OpClose, Masked: true}), close: 1002},
		{name: "ping of 126 bytes", in: ws.Ping([]byte(long)), close: 1002},
		{name: "close of 126 bytes", in: frame(ws.Frame{Fin: true, Op: ws.OpClose, Masked: true, Payload: append([]byte{3, 232}, long[:124]...)}), close: 1002},
		{name: "ping of 125 bytes", in: ws.Ping([]byte(long[:125])), pongs: []string{long[:125]}},
		{name: "empty ping", in: ws.Ping(nil), pongs: []string{""}},
		{name: "pong is accepted silently", in: ws.Concat(ws.Pong([]byte("p")), ws.Text("after")), msgs: []msg{textMsg("after")}},
		// §5.5.1: a close body is empty or at least 2 bytes.
		{name: "1-byte close", in: frame(ws.Frame{Fin: true, Op: ws.OpClose, Masked: true, Payload: []byte{3}}), close: 1002},
		// §5.4: fragmentation.
		{name: "continuation without a message", in: ws.Cont(true, []byte("x")), close: 1002},
		{name: "text inside a fragmented message", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("a")}), ws.Text("b")), close: 1002},
		{name: "binary inside a fragmented message", in: ws.Concat(frame(ws.Frame{Op: ws.OpBinary, Masked: true, Payload: []byte("a")}), ws.Binary([]byte("b"))), close: 1002},
		{name: "fragmented text", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("Hel")}), ws.Cont(false, []byte("l")), ws.Cont(true, []byte("o"))), msgs: []msg{textMsg("Hello")}},
		{name: "fragments with empty parts", in: ws.Concat(frame(ws.Frame{Op: ws.OpBinary, Masked: true}), ws.Cont(false, nil), ws.Cont(true, []byte("x"))), msgs: []msg{binMsg("x")}},
		{name: "ping between fragments is answered in place", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("Hel")}), ws.Ping([]byte("mid")), ws.Cont(true, []byte("lo"))), msgs: []msg{textMsg("Hello")}, pongs: []string{"mid"}},
		{name: "pong between fragments", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("Hel")}), ws.Pong(nil), ws.Cont(true, []byte("lo"))), msgs: []msg{textMsg("Hello")}},
		{name: "close between fragments", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("Hel")}), ws.Close(1000, "")), close: 1000},
		// §11.8: reserved opcodes.
		{name: "opcode 3", in: frame(ws.Frame{Fin: true, Op: 3, Masked: true}), close: 1002},
		{name: "opcode 7", in: frame(ws.Frame{Fin: true, Op: 7, Masked: true}), close: 1002},
		{name: "opcode 0xB", in: frame(ws.Frame{Fin: true, Op: 0xB, Masked: true}), close: 1002},
		{name: "opcode 0xF", in: frame(ws.Frame{Fin: true, Op: 0xF, Masked: true, Payload: []byte("x")}), close: 1002},
		// §8.1: UTF-8.
		{name: "invalid UTF-8", in: ws.Text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), close: 1007},
		{name: "valid UTF-8", in: ws.Text("κόσμε"), msgs: []msg{textMsg("κόσμε")}},
		{name: "UTF-8 split across fragments", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("κ\xcf")}), ws.Cont(true, []byte("\x8cσμε"))), msgs: []msg{textMsg("κόσμε")}},
		{name: "text ending inside a sequence", in: ws.Text("abc\xce"), close: 1007},
		{name: "fragmented text ending inside a sequence", in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("a")}), ws.Cont(true, []byte("\xe2\x82"))), close: 1007},
		{name: "binary is not UTF-8 checked", in: ws.Binary([]byte{0xff, 0xfe}), msgs: []msg{binMsg("\xff\xfe")}},
		{name: "surrogate", in: ws.Text("\xed\xa0\x80"), close: 1007},
		{name: "overlong", in: ws.Text("\xc0\xaf"), close: 1007},
		{name: "above U+10FFFF", in: ws.Text("\xf4\x90\x80\x80"), close: 1007},
		// §5.5.1 and §7.4: closing.
		{name: "close without body", in: ws.Close(0, ""), close: 1000},
		{name: "close with reason", in: ws.Close(1000, "bye"), close: 1000},
		{name: "close reason invalid UTF-8", in: ws.Close(1000, "\xff"), close: 1007},
		{name: "data after close is ignored", in: ws.Concat(ws.Close(1000, ""), ws.Text("late")), close: 1000},
		// Size limits, apache-websocket's WebSocketMaxMessageSize.
		{name: "message at the limit", opts: Options{MaxMessageSize: 10}, in: ws.Text("0123456789"), msgs: []msg{textMsg("0123456789")}},
		{name: "message over the limit", opts: Options{MaxMessageSize: 10}, in: ws.Text("0123456789A"), close: 1009},
		{name: "fragments over the limit", opts: Options{MaxMessageSize: 10}, in: ws.Concat(frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("012345")}), ws.Cont(true, []byte("6789A"))), close: 1009},
		{name: "version 8 gets 1004", opts: Options{MaxMessageSize: 10, version: 8}, in: ws.Text("0123456789A"), close: 1004},
		{name: "version 7 gets 1004", opts: Options{MaxMessageSize: 10, version: 7}, in: ws.Text("0123456789A"), close: 1004},
		{name: "limit applies to control frames", opts: Options{MaxMessageSize: 30}, in: ws.Close(1000, strings.Repeat("r", 29)), close: 1009},
		{name: "close reason at the limit", opts: Options{MaxMessageSize: 30}, in: ws.Close(1000, strings.Repeat("r", 28)), close: 1000},
		{name: "ping over the limit", opts: Options{MaxMessageSize: 4}, in: ws.Ping([]byte("12345")), close: 1009},
		{name: "header declaring 2^63-1 bytes", in: frame(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1<<63 - 1}), close: 1009},
		{name: "length with the top bit set", in: frame(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1 << 63}), close: 1002},
	}
	for _, tc := range cases {
		for _, split := range []string{"whole", "bytewise"} {
			t.Run(tc.name+"/"+split, func(t *testing.T) {
				chunks := [][]byte{tc.in}
				if split == "bytewise" {
					chunks = bytewise(tc.in)
				}
				checkRule(t, tc, chunks)
			})
		}
	}
}

func checkRule(t *testing.T, tc ruleCase, chunks [][]byte) {
	t.Helper()
	h := newHandler()
	c := newConn(h, tc.opts)
	tr := &nbRecorder{}
	c.start(tr)
	err := feedAll(c, chunks...)
	if got := h.messages(); !slices.Equal(got, tc.msgs) {
		t.Errorf("messages = %v, want %v", short(got), short(tc.msgs))
	}
	var pongs []string
	var closeCode uint16
	for _, f := range tr.frames(t) {
		switch f.Op {
		case ws.OpPong:
			pongs = append(pongs, string(f.Payload))
		case ws.OpClose:
			if closeCode != 0 {
				t.Errorf("second close frame %v", f)
			}
			closeCode = f.Code()
			// A close that fails the connection says why, briefly.
			if failed := closeCode != 1000 && closeCode != 0; failed && (f.Reason() == "" || len(f.Payload) > 125) {
				t.Errorf("close %d with reason %q: want a short reason", closeCode, f.Reason())
			}
		default:
			t.Errorf("unexpected frame %v", f)
		}
	}
	if !slices.Equal(pongs, tc.pongs) {
		t.Errorf("pongs = %q, want %q", pongs, tc.pongs)
	}
	if closeCode != tc.close {
		t.Errorf("server close code = %d, want %d (Feed error: %v)", closeCode, tc.close, err)
	}
	if (err != nil) != (tc.close != 0) {
		t.Errorf("Feed error = %v, want an error: %v", err, tc.close != 0)
	}
}

func short(ms []msg) string {
	var b strings.Builder
	for _, m := range ms {
		d := m.data
		if len(d) > 20 {
			d = fmt.Sprintf("%s…(%d bytes)", d[:20], len(d))
		}
		fmt.Fprintf(&b, "[%v %q]", m.typ, d)
	}
	return b.String()
}

// TestCloseCodes checks every code class of RFC 6455 §7.4 against
// apache-websocket's rules, with and without allow_reserved_status_codes.
func TestCloseCodes(t *testing.T) {
	cases := []struct {
		code          uint16
		strict, loose uint16 // server's answer without and with reserved codes
	}{
		{0, 1002, 1002}, {999, 1002, 1002},
		{1000, 1000, 1000}, {1001, 1000, 1000}, {1002, 1000, 1000}, {1003, 1000, 1000},
		{1004, 1002, 1000}, // reserved (hybi "frame too large")
		{1005, 1002, 1002}, {1006, 1002, 1002},
		{1007, 1000, 1000}, {1008, 1000, 1000}, {1009, 1000, 1000}, {1010, 1000, 1000},
		{1011, 1000, 1000}, {1012, 1000, 1000}, {1013, 1000, 1000},
		{1014, 1002, 1000},
		{1015, 1002, 1002},
		{1016, 1002, 1000}, {2000, 1002, 1000}, {2999, 1002, 1000},
		{3000, 1000, 1000}, {3999, 1000, 1000}, {4000, 1000, 1000}, {4999, 1000, 1000},
		{5000, 1002, 1002}, {65535, 1002, 1002},
	}
	for _, tc := range cases {
		for _, allow := range []bool{false, true} {
			want := tc.strict
			if allow {
				want = tc.loose
			}
			t.Run(fmt.Sprintf("%d/reserved=%v", tc.code, allow), func(t *testing.T) {
				in := frame(ws.Frame{Fin: true, Op: ws.OpClose, Masked: true, Payload: []byte{byte(tc.code >> 8), byte(tc.code)}})
				checkRule(t, ruleCase{opts: Options{AllowReservedStatusCodes: allow}, close: want}, [][]byte{in})
			})
		}
	}
}

// TestUTF8FailsFast checks that an invalid sequence fails the connection
// in the read that brings it, before the rest of the frame or message has
// arrived (what the Autobahn fuzzing client counts as strict).
func TestUTF8FailsFast(t *testing.T) {
	payload := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64")
	full := ws.Text(string(payload))
	// Header (2) + mask (4) + the bytes up to and including 0xf4 0x90.
	cut := 6 + 13
	t.Run("mid-frame", func(t *testing.T) {
		h := newHandler()
		c := newConn(h, Options{})
		tr := &nbRecorder{}
		c.start(tr)
		err := c.feed(append([]byte(nil), full[:cut]...))
		if err == nil {
			t.Fatal("Feed accepted an invalid sequence; the rest of the frame has not even arrived")
		}
		if fs := tr.frames(t); len(fs) != 1 || fs[0].Code() != 1007 {
			t.Fatalf("frames = %v, want close 1007", fs)
		}
	})
	t.Run("first fragment", func(t *testing.T) {
		h := newHandler()
		c := newConn(h, Options{})
		tr := &nbRecorder{}
		c.start(tr)
		first := frame(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("ok\xff")})
		if err := c.feed(first); err == nil {
			t.Fatal("Feed accepted an invalid first fragment")
		}
		if fs := tr.frames(t); len(fs) != 1 || fs[0].Code() != 1007 {
			t.Fatalf("frames = %v, want close 1007", fs)
		}
	})
}

// TestHugeHeaderCostsNothing checks that a header declaring 2^63-1 bytes
// is refused from the header alone, without the engine reserving memory
// for it.
func TestHugeHeaderCostsNothing(t *testing.T) {
	in := frame(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1<<63 - 1})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		c := newConn(newHandler(), Options{})
		c.start(&nbRecorder{})
		if err := c.feed(append([]byte(nil), in...)); err == nil {
			t.Fatal("a 2^63-1 byte frame was accepted")
		}
	}
	runtime.ReadMemStats(&after)
	if perConn := (after.TotalAlloc - before.TotalAlloc) / 100; perConn > 16<<10 {
		t.Fatalf("refusing the frame allocated %d bytes per connection", perConn)
	}
}
