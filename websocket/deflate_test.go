package websocket

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

func TestParseExtensions(t *testing.T) {
	cases := []struct {
		in   string
		want string // "name(p=v,q)" per extension, or "error"
	}{
		{"permessage-deflate", "permessage-deflate()"},
		{"permessage-deflate; client_max_window_bits", "permessage-deflate(client_max_window_bits)"},
		{"permessage-deflate;server_max_window_bits=10 ; client_no_context_takeover, x-foo", "permessage-deflate(server_max_window_bits=10,client_no_context_takeover) x-foo()"},
		{`permessage-deflate; server_max_window_bits="10"`, "permessage-deflate(server_max_window_bits=10)"},
		{`a; b="x\"y"`, `a(b=x"y)`},
		{" , a ,, b ", "a() b()"},
		{"a; =1", "error"},
		{"a b", "error"},
		{"a; b=", "error"},
		{`a; b="unterminated`, "error"},
		{"a;;b", "error"},
		{"(a)", "error"},
	}
	for _, tc := range cases {
		exts, err := parseExtensions([]string{tc.in})
		got := "error"
		if err == "" {
			var parts []string
			for _, e := range exts {
				var ps []string
				for _, p := range e.Params {
					if p.HasValue {
						ps = append(ps, p.Name+"="+p.Value)
					} else {
						ps = append(ps, p.Name)
					}
				}
				parts = append(parts, e.Name+"("+strings.Join(ps, ",")+")")
			}
			got = strings.Join(parts, " ")
		}
		if got != tc.want {
			t.Errorf("%q: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestNegotiateDeflate covers RFC 7692 §5 and §7: the first acceptable
// offer wins, unacceptable ones are declined without failing the
// handshake, and the response carries exactly the parameters that apply.
func TestNegotiateDeflate(t *testing.T) {
	full := DeflatePolicy{ServerContextTakeover: true, ClientContextTakeover: true}
	lean := DeflatePolicy{ServerMaxWindowBits: 12, ClientMaxWindowBits: 10}
	cases := []struct {
		name   string
		policy DeflatePolicy
		offers []string
		resp   string // "" means declined; "400" means a bad request
		sBits  int
		cBits  int
	}{
		{"plain offer", full, []string{"permessage-deflate"}, "permessage-deflate", 15, 15},
		{"chrome", full, []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate", 15, 15},
		{"client bits with value", full, []string{"permessage-deflate; client_max_window_bits=10"}, "permessage-deflate; client_max_window_bits=10", 15, 10},
		{"server bits", full, []string{"permessage-deflate; server_max_window_bits=9"}, "permessage-deflate; server_max_window_bits=9", 9, 15},
		{"server bits 8", full, []string{"permessage-deflate; server_max_window_bits=8"}, "permessage-deflate; server_max_window_bits=8", 8, 15},
		{"server no context takeover asked", full, []string{"permessage-deflate; server_no_context_takeover"}, "permessage-deflate; server_no_context_takeover", 15, 15},
		{"client no context takeover offered", full, []string{"permessage-deflate; client_no_context_takeover"}, "permessage-deflate; client_no_context_takeover", 15, 15},
		{"all four", full, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"},
			"permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_no_context_takeover; client_max_window_bits=11", 10, 11},
		{"lean policy, plain offer", lean, []string{"permessage-deflate"}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 12, 15},
		{"lean policy, client bits offered", lean, []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10", 12, 10},
		{"lean policy, server bits above ours", lean, []string{"permessage-deflate; server_max_window_bits=14"}, "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_no_context_takeover", 12, 15},
		{"first acceptable offer wins", full, []string{"permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=11, permessage-deflate"}, "permessage-deflate; server_max_window_bits=11", 11, 15},
		{"offers on two lines", full, []string{"x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits=9"}, "permessage-deflate; client_max_window_bits=9", 15, 9},
		{"unknown parameter declines", full, []string{"permessage-deflate; foo"}, "", 0, 0},
		{"duplicate parameter declines", full, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, "", 0, 0},
		{"server bits without value declines", full, []string{"permessage-deflate; server_max_window_bits"}, "", 0, 0},
		{"window 7 declines", full, []string{"permessage-deflate; server_max_window_bits=7"}, "", 0, 0},
		{"window 16 declines", full, []string{"permessage-deflate; client_max_window_bits=16"}, "", 0, 0},
		{"leading zero declines", full, []string{"permessage-deflate; server_max_window_bits=09"}, "", 0, 0},
		{"value on a flag declines", full, []string{"permessage-deflate; client_no_context_takeover=1"}, "", 0, 0},
		{"quoted value", full, []string{`permessage-deflate; server_max_window_bits="12"`}, "permessage-deflate; server_max_window_bits=12", 12, 15},
		{"other extension only", full, []string{"x-webkit-deflate-frame"}, "", 0, 0},
		{"malformed header", full, []string{"permessage-deflate; ;"}, "400", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, resp, herr := negotiateDeflate(http.Header{"Sec-Websocket-Extensions": tc.offers}, tc.policy)
			if tc.resp == "400" {
				if herr == nil || herr.Status != 400 {
					t.Fatalf("got %v %q, want 400", herr, resp)
				}
				return
			}
			if herr != nil {
				t.Fatal(herr)
			}
			if resp != tc.resp {
				t.Fatalf("response %q, want %q", resp, tc.resp)
			}
			if tc.resp == "" {
				if d != nil {
					t.Fatal("declined but parameters returned")
				}
				return
			}
			if d.ServerWindowBits != tc.sBits || d.ClientWindowBits != tc.cBits {
				t.Fatalf("bits %d/%d, want %d/%d", d.ServerWindowBits, d.ClientWindowBits, tc.sBits, tc.cBits)
			}
		})
	}
}

// client plays a compressing peer: it deflates messages with its own
// context (or without), masks them, and inflates what the server sends.
type client struct {
	takeover bool
	w        *flate.Writer
	out      bytes.Buffer
	window   []byte // server stream history, for inflating with context
	bits     int
}

func newClient(takeover bool, bits int) *client {
	c := &client{takeover: takeover, bits: bits}
	if bits < 15 {
		c.w, _ = flate.NewWriterWindow(&c.out, 1<<bits)
	} else {
		c.w, _ = flate.NewWriter(&c.out, 5)
	}
	return c
}

func (cl *client) compress(p []byte) []byte {
	cl.out.Reset()
	if !cl.takeover {
		cl.w.Reset(&cl.out)
	}
	cl.w.Write(p)
	cl.w.Flush()
	b := cl.out.Bytes()
	return append([]byte(nil), b[:len(b)-4]...)
}

// frames builds the client frames of a compressed message split into
// fragments of size frag (0: one frame).
func compressedFrames(op byte, z []byte, frag int) []byte {
	if frag <= 0 || frag >= len(z) {
		return ws.Frame{Fin: true, RSV: 0x40, Op: op, Masked: true, Payload: z}.Bytes()
	}
	var out []byte
	for i := 0; i < len(z); i += frag {
		end := min(i+frag, len(z))
		f := ws.Frame{Fin: end == len(z), Op: ws.OpCont, Masked: true, Payload: z[i:end]}
		if i == 0 {
			f.Op, f.RSV = op, 0x40
		}
		out = append(out, f.Bytes()...)
	}
	return out
}

// inflateServer decodes a server frame as a browser would.
func (cl *client) inflateServer(t testing.TB, f ws.Received, noTakeover bool) []byte {
	t.Helper()
	if f.RSV&0x40 == 0 {
		return f.Payload
	}
	var dict []byte
	if !noTakeover {
		dict = cl.window
	}
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(f.Payload), bytes.NewReader(deflateTail)), dict)
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflating server frame: %v", err)
	}
	cl.window = append(cl.window, out...)
	if len(cl.window) > 1<<15 {
		cl.window = cl.window[len(cl.window)-1<<15:]
	}
	return out
}

func jsonish(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, `{"id":%d,"user":"u%d","op":"move","x":%d,"y":%d}`, r.IntN(1e6), r.IntN(40), r.IntN(800), r.IntN(600))
	}
	return b.Bytes()[:n]
}

func deflateConn(d deflateParams, opts Options) (*Conn, *handler, *nbRecorder) {
	h := newHandler()
	opts.deflate = &d
	c := newConn(h, opts)
	tr := &nbRecorder{}
	c.start(tr)
	return c, h, tr
}

// TestDeflateReceive: compressed messages from a client with and without
// context takeover, whole and fragmented, with control frames between the
// fragments, and uncompressed messages mixed in.
func TestDeflateReceive(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		for _, frag := range []int{0, 7, 300} {
			t.Run(fmt.Sprintf("takeover=%v/frag=%d", takeover, frag), func(t *testing.T) {
				c, h, tr := deflateConn(deflateParams{ClientNoContextTakeover: !takeover, ClientWindowBits: 15, ServerWindowBits: 15, ServerNoContextTakeover: true, Threshold: 1 << 30}, Options{})
				cl := newClient(takeover, 15)
				r := rand.New(rand.NewPCG(7, 7))
				var want []msg
				for i := range 200 {
					p := jsonish(r, 1+r.IntN(2000))
					if i%10 == 3 {
						// An uncompressed message on a compressed connection.
						if err := c.feed(ws.Binary(p)); err != nil {
							t.Fatal(err)
						}
						want = append(want, binMsg(string(p)))
						continue
					}
					in := compressedFrames(ws.OpText, cl.compress(p), frag)
					if err := c.feed(in); err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					want = append(want, textMsg(string(p)))
				}
				if got := h.messages(); !slices.Equal(got, want) {
					t.Fatalf("delivered %d messages, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
				}
				if fs := tr.frames(t); len(fs) != 0 {
					t.Fatalf("server sent %v", fs)
				}
			})
		}
	}
}

func firstDiff(a, b []msg) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestDeflateInterleavedControl(t *testing.T) {
	c, h, tr := deflateConn(deflateParams{ServerNoContextTakeover: true, ClientWindowBits: 15, ServerWindowBits: 15, Threshold: 1 << 30}, Options{})
	cl := newClient(true, 15)
	p := bytes.Repeat([]byte("interleaved "), 100)
	z := cl.compress(p)
	half := len(z) / 2
	in := ws.Concat(
		ws.Frame{Op: ws.OpText, RSV: 0x40, Masked: true, Payload: z[:half]}.Bytes(),
		ws.Ping([]byte("in the middle")),
		ws.Cont(true, z[half:]),
	)
	if err := c.feed(in); err != nil {
		t.Fatal(err)
	}
	if got := h.messages(); len(got) != 1 || got[0].data != string(p) {
		t.Fatalf("%v", short(got))
	}
	if fs := tr.frames(t); len(fs) != 1 || fs[0].Op != ws.OpPong {
		t.Fatalf("%v", fs)
	}
}

func TestDeflateFrameRules(t *testing.T) {
	d := deflateParams{ClientWindowBits: 15, ServerWindowBits: 15, ServerNoContextTakeover: true}
	z := newClient(false, 15).compress([]byte("hello hello hello"))
	cases := []struct {
		name string
		in   []byte
		code uint16
	}{
		{"RSV1 on continuation", ws.Concat(ws.Frame{Op: ws.OpText, RSV: 0x40, Masked: true, Payload: z[:3]}.Bytes(), ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpCont, Masked: true, Payload: z[3:]}.Bytes()), 1002},
		{"RSV1 on uncompressed message's continuation", ws.Concat(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("a")}.Bytes(), ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpCont, Masked: true}.Bytes()), 1002},
		{"RSV1 on ping", ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpPing, Masked: true}.Bytes(), 1002},
		{"RSV1 on close", ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpClose, Masked: true}.Bytes(), 1002},
		{"RSV2 with deflate", ws.Frame{Fin: true, RSV: 0x20, Op: ws.OpText, Masked: true, Payload: z}.Bytes(), 1002},
		{"garbage compressed data", ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpBinary, Masked: true, Payload: []byte{0xff, 0xff, 0xff, 0xff}}.Bytes(), 1007},
		{"compressed invalid UTF-8", compressedFrames(ws.OpText, newClient(false, 15).compress([]byte("ok \xff")), 0), 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, tr := deflateConn(d, Options{})
			if err := c.feed(tc.in); err == nil {
				t.Fatal("accepted")
			}
			if fs := tr.frames(t); len(fs) != 1 || fs[0].Code() != tc.code {
				t.Fatalf("frames %v, want close %d", fs, tc.code)
			}
		})
	}
	// Without deflate negotiated, RSV1 is a protocol error.
	c, _, tr := deflateConn(d, Options{})
	c.z = nil
	c.feed(compressedFrames(ws.OpText, z, 0))
	if fs := tr.frames(t); len(fs) != 1 || fs[0].Code() != 1002 {
		t.Fatalf("frames %v", fs)
	}
}

// TestDeflateBomb: a frame that inflates far beyond the limit closes with
// 1009 having produced no more than the limit.
func TestDeflateBomb(t *testing.T) {
	// 1 MiB of zeros compressed and sync-flushed is a byte-aligned run of
	// non-final blocks; 1024 copies of it are one stream that inflates to
	// 1 GiB.
	var seg bytes.Buffer
	w, _ := flate.NewWriter(&seg, 9)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	z := bytes.Repeat(seg.Bytes(), 1024)
	z = z[:len(z)-4]
	t.Logf("1 GiB of zeros compresses to %d bytes", len(z))
	for _, limit := range []int64{64 << 10, 4 << 20} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			c, h, tr := deflateConn(deflateParams{ServerNoContextTakeover: true, ClientWindowBits: 15, ServerWindowBits: 15}, Options{MaxMessageSize: limit})
			in := ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpBinary, Masked: true, Payload: z[:min(len(z), int(limit))]}.Bytes()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := c.feed(in)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("accepted")
			}
			if fs := tr.frames(t); len(fs) != 1 || fs[0].Code() != 1009 {
				t.Fatalf("frames %v", fs)
			}
			if len(h.messages()) != 0 {
				t.Fatal("a message was delivered")
			}
			if alloc := int64(after.TotalAlloc - before.TotalAlloc); alloc > 4*limit+256<<10 {
				t.Fatalf("inflating with a %d-byte limit allocated %d bytes", limit, alloc)
			}
		})
	}
}

// TestDeflateSend: the server compresses, with and without context
// takeover, at window bits 15 and 9, messages from 1 byte to 100 KiB, and a
// client decodes every message. Small messages stay uncompressed.
func TestDeflateSend(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		for _, bits := range []int{15, 9} {
			t.Run(fmt.Sprintf("takeover=%v/bits=%d", takeover, bits), func(t *testing.T) {
				d := deflateParams{ServerNoContextTakeover: !takeover, ServerWindowBits: bits, ClientWindowBits: 15, Threshold: 64, Level: 1}
				c, _, tr := deflateConn(d, Options{})
				r := rand.New(rand.NewPCG(3, 3))
				var sent [][]byte
				for i := range 1000 {
					p := jsonish(r, 1+r.IntN(3000))
					if i%100 == 0 {
						p = bytes.Repeat([]byte{byte(i)}, 5000) // larger than a 9-bit window
					}
					if i%100 == 57 {
						// Above statelessMax: a pooled compressor instead of
						// the stateless encoder.
						p = jsonish(r, statelessMax+1+r.IntN(70000))
					}
					if err := c.Send(BinaryMessage, p); err != nil {
						t.Fatal(err)
					}
					sent = append(sent, p)
				}
				cl := newClient(false, 15)
				fs := tr.frames(t)
				if len(fs) != len(sent) {
					t.Fatalf("%d frames for %d messages", len(fs), len(sent))
				}
				var raw, wire int
				for i, f := range fs {
					if len(sent[i]) < 64 && f.RSV != 0 {
						t.Fatalf("message %d of %d bytes was compressed below the threshold", i, len(sent[i]))
					}
					got := cl.inflateServer(t, f, !takeover)
					if !bytes.Equal(got, sent[i]) {
						t.Fatalf("message %d differs", i)
					}
					raw += len(sent[i])
					wire += len(f.Payload)
				}
				t.Logf("%d bytes sent as %d (%.2f)", raw, wire, float64(wire)/float64(raw))
			})
		}
	}
}

// TestDeflateTakeoverAcrossIdle: after the compressor is released for
// idleness, the stream continues correctly for a peer that kept its window.
func TestDeflateTakeoverAcrossIdle(t *testing.T) {
	c, _, tr := deflateConn(deflateParams{ServerWindowBits: 15, ClientWindowBits: 15, Threshold: 1, Level: 1}, Options{})
	p := []byte("the same sentence, over and over; the same sentence, over and over")
	c.Send(TextMessage, p)
	c.z.zmu.Lock()
	c.z.lastUse = c.z.lastUse.Add(-2 * compressorIdle)
	c.z.zmu.Unlock()
	c.z.idleCheck()
	if c.z.zw != nil {
		t.Fatal("compressor kept after idling")
	}
	c.Send(TextMessage, p)
	cl := newClient(false, 15)
	for _, f := range tr.frames(t) {
		if got := cl.inflateServer(t, f, false); !bytes.Equal(got, p) {
			t.Fatal("message differs after the compressor was released")
		}
	}
}

func TestDeflatePreparedCompressedOnce(t *testing.T) {
	pm := NewPreparedMessage(TextMessage, bytes.Repeat([]byte("broadcast "), 100))
	var trs []*nbRecorder
	for range 10 {
		c, _, tr := deflateConn(deflateParams{ServerNoContextTakeover: true, ServerWindowBits: 15, ClientWindowBits: 15, Threshold: 64}, Options{})
		c.SendPrepared(pm)
		trs = append(trs, tr)
	}
	if !pm.zdone[15] || pm.zbuf[15] == nil {
		t.Fatal("no shared compressed frame")
	}
	pm.Release()
	cl := newClient(false, 15)
	for _, tr := range trs {
		fs := tr.frames(t)
		if len(fs) != 1 || fs[0].RSV != 0x40 || string(cl.inflateServer(t, fs[0], true)) != strings.Repeat("broadcast ", 100) {
			t.Fatalf("%v", fs)
		}
	}
}

// FuzzInflate feeds arbitrary bytes as a compressed message: no panic, and
// never more output than the limit.
func FuzzInflate(f *testing.F) {
	f.Add(newClient(false, 15).compress([]byte("hello hello hello")), true)
	f.Add([]byte{0xff, 0x00}, false)
	f.Add(newClient(false, 15).compress(make([]byte, 100000)), true)
	f.Fuzz(func(t *testing.T, z []byte, takeover bool) {
		d := newDeflateState(deflateParams{ClientNoContextTakeover: !takeover, ClientWindowBits: 9})
		for range 2 {
			out, err := d.inflate(z, 4096, StatusMessageTooBig)
			if err == nil {
				if len(*out) > 4096 {
					t.Fatalf("%d bytes out with a 4096-byte limit", len(*out))
				}
				putBuf(out)
			}
			if d.dict != nil && len(*d.dict) > 1<<9 {
				t.Fatalf("window grew to %d bytes", len(*d.dict))
			}
		}
	})
}

func FuzzParseExtensions(f *testing.F) {
	f.Add("permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10")
	f.Add(`a; b="x\"y", c`)
	f.Fuzz(func(t *testing.T, s string) {
		exts, err := parseExtensions([]string{s})
		if err != "" {
			return
		}
		for _, e := range exts {
			if e.Name == "" {
				t.Fatal("empty extension name")
			}
			for _, p := range e.Params {
				if p.Name == "" {
					t.Fatal("empty parameter name")
				}
			}
		}
		d, resp, herr := negotiateDeflate(http.Header{"Sec-Websocket-Extensions": {s}}, DeflatePolicy{ServerContextTakeover: true})
		if herr == nil && d != nil {
			// The response must itself parse and name permessage-deflate.
			back, err := parseExtensions([]string{resp})
			if err != "" || len(back) != 1 || back[0].Name != "permessage-deflate" {
				t.Fatalf("response %q does not parse", resp)
			}
		}
	})
}

// TestInflateBudget: a client whose compressed messages inflate faster
// than InflateRate is slowed (its reader waits for the budget), and closed
// with 1008 (cause inflate_budget) once slowed for too long; a Waker
// transport's connection, which must not wait, is closed as soon as it is
// a burst over. A client within the rate is never slowed.
func TestInflateBudget(t *testing.T) {
	defer func(d time.Duration) { inflateSlowLimit = d }(inflateSlowLimit)
	inflateSlowLimit = 600 * time.Millisecond
	// 256 KiB of zeros: a few hundred bytes on the wire.
	bomb := compressedFrames(ws.OpBinary, newClient(false, 15).compress(make([]byte, 256<<10)), 0)
	params := deflateParams{ClientNoContextTakeover: true, ServerNoContextTakeover: true, ClientWindowBits: 15, ServerWindowBits: 15}
	t.Run("slowed, then closed", func(t *testing.T) {
		c, h, tr := deflateConn(params, Options{MaxMessageSize: 256 << 10, InflateRate: 1 << 20})
		var err error
		sent := 0
		for ; sent < 100 && err == nil; sent++ {
			err = c.feed(append([]byte(nil), bomb...))
		}
		// The burst (1 MiB: 4 messages) goes at once; then each costs
		// about a quarter second of waiting, and 600 ms of it is the limit
		// (more if the machine is slow to wake the reader: the budget
		// refills meanwhile).
		if n := len(h.messages()); n < 4 || sent == 100 {
			t.Errorf("%d messages delivered, of %d sent, before the close", n, sent)
		}
		if fs := tr.frames(t); len(fs) != 1 || fs[0].Code() != 1008 {
			t.Fatalf("frames %v, want a 1008", fs)
		}
		if st := c.Stats(); st.CloseCause != CauseInflateBudget {
			t.Errorf("cause %q", st.CloseCause)
		}
	})
	t.Run("Waker: closed a burst over", func(t *testing.T) {
		h := newHandler()
		opts := Options{MaxMessageSize: 256 << 10, InflateRate: 1 << 20}
		p := params
		opts.deflate = &p
		c := newConn(h, opts)
		tr := &wakerRecorder{}
		c.start(tr)
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			err = c.feed(append([]byte(nil), bomb...))
		}
		if n := len(h.messages()); n < 8 || n > 9 {
			t.Errorf("%d messages delivered before the close; the burst is 4, the debt another 4", n)
		}
		if st := c.Stats(); st.CloseCause != CauseInflateBudget || st.CloseSent.Code != 1008 {
			t.Errorf("closed %v for %q", st.CloseSent, st.CloseCause)
		}
	})
	t.Run("within the rate", func(t *testing.T) {
		c, h, _ := deflateConn(params, Options{MaxMessageSize: 256 << 10, InflateRate: 64 << 20})
		for range 20 {
			if err := c.feed(append([]byte(nil), bomb...)); err != nil {
				t.Fatal(err)
			}
		}
		if len(h.messages()) != 20 || c.z.inflSlowed != 0 {
			t.Fatalf("%d delivered, slowed %v", len(h.messages()), c.z.inflSlowed)
		}
	})
}

// wakerRecorder is a transport whose I/O stays on its owner (an httpd
// worker): the engine must never make it wait.
type wakerRecorder struct{ recorder }

func (*wakerRecorder) Wake() {}
