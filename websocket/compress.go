package websocket

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692), the engine's side.
//
// Library: github.com/klauspost/compress/flate, chosen by measurement over
// compress/flate (docs/DEFLATE.md): it compresses 1.5-2x faster at the same
// ratio, it is the only one of the two with custom windows (8 to 14 bits,
// which a client may demand with server_max_window_bits), and it has a
// stateless encoder that keeps nothing between messages.
//
// Memory, per connection:
//   - receiving, client context takeover: the last 2^ClientWindowBits bytes
//     received (32 KiB at 15 bits, 256 B at 8), kept between messages. The
//     inflater itself (about 36 KiB) is pooled and held only while one
//     message is inflated.
//   - receiving, client_no_context_takeover: nothing between messages.
//   - sending, server_no_context_takeover: nothing; each message is
//     compressed statelessly, or with a pooled small-window compressor when
//     the window is below 15 bits and the message is larger than it.
//   - sending with context takeover: a compressor (about 0.8 MiB) held while
//     the connection sends and returned to the pool after compressorIdle
//     without a compressed message. A compressor taken again starts without
//     history, which is always valid: the peer's decoder keeps its window
//     whether or not we refer to it.

// compressorIdle is how long a context-takeover compressor stays with a
// connection that stopped sending.
const compressorIdle = time.Second

// deflateTail ends every compressed message for the inflater: RFC 7692
// §7.2.2's 00 00 ff ff, then an empty final stored block so the inflater
// reports io.EOF instead of waiting for more.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var inflaters sync.Pool // io.ReadCloser that is also a flate.Resetter

// deflateState is one connection's compression state.
type deflateState struct {
	p deflateParams

	// The compressed messages' bytes each way, on the wire and
	// uncompressed (Stats); here, not in Conn, since only connections that
	// negotiated the extension count them.
	stats struct{ in, rawIn, out, rawOut atomic.Uint64 }

	// Receive side, owned by the reader.
	dict *[]byte // sliding window of the client's stream, when it keeps context
	in   inflateInput
	// The inflation budget (inflatebudget.go): bytes left, when it was
	// brought up to date, and how long the connection has been slowed
	// since it was last full.
	inflTokens float64
	inflAt     time.Duration
	inflSlowed time.Duration

	// Send side with context takeover, under zmu. zmu is held across
	// compressing and queueing a message, so messages reach the wire in the
	// order the compressor saw them.
	zmu     sync.Mutex
	zw      *flate.Writer
	sink    sink
	lastUse time.Time
	timer   *time.Timer
	closed  bool
}

func newDeflateState(p deflateParams) *deflateState { return &deflateState{p: p} }

// inflateInput presents a compressed message followed by deflateTail as
// an io.ByteReader, so the inflater reads it without a bufio wrapper.
type inflateInput struct {
	src []byte
	pos int
}

func (r *inflateInput) reset(src []byte) { r.src, r.pos = src, 0 }

func (r *inflateInput) ReadByte() (byte, error) {
	switch {
	case r.pos < len(r.src):
		r.pos++
		return r.src[r.pos-1], nil
	case r.pos-len(r.src) < len(deflateTail):
		r.pos++
		return deflateTail[r.pos-1-len(r.src)], nil
	}
	return 0, io.EOF
}

func (r *inflateInput) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := r.ReadByte()
		if err != nil {
			if n == 0 {
				return 0, err
			}
			break
		}
		p[n] = b
		n++
	}
	return n, nil
}

// inflate decompresses one message. Inflation stops as soon as the output
// passes limit, so a small frame that would expand to gigabytes costs at
// most limit bytes of output.
func (d *deflateState) inflate(src []byte, limit int64, tooBig StatusCode) (*[]byte, *protoError) {
	var fr io.ReadCloser
	if v := inflaters.Get(); v != nil {
		fr = v.(io.ReadCloser)
	} else {
		fr = flate.NewReader(nil)
	}
	defer inflaters.Put(fr)
	var dict []byte
	if d.dict != nil {
		dict = *d.dict
	}
	d.in.reset(src)
	defer d.in.reset(nil) // do not keep the read buffer alive
	if err := fr.(flate.Resetter).Reset(&d.in, dict); err != nil {
		return nil, &protoError{Code: StatusInvalidPayload, Reason: "cannot start inflating"}
	}
	out := getBuf(int(min(limit+1, max(int64(4*len(src)), 1024))))
	var total int64
	for {
		if len(*out) == cap(*out) {
			nb := getBuf(int(min(limit+1, int64(2*cap(*out)))))
			*nb = append(*nb, *out...)
			putBuf(out)
			out = nb
		}
		room := (*out)[len(*out):min(int64(cap(*out)), limit+1)]
		n, err := fr.Read(room)
		*out = (*out)[:len(*out)+n]
		total += int64(n)
		if total > limit {
			putBuf(out)
			return nil, &protoError{Code: tooBig, Reason: "inflated message over the size limit"}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			putBuf(out)
			return nil, &protoError{Code: StatusInvalidPayload, Reason: "invalid compressed data: " + err.Error()}
		}
	}
	if !d.p.ClientNoContextTakeover {
		d.keepWindow(*out)
	}
	return out, nil
}

// keepWindow appends the message to the client's sliding window, keeping
// its last 2^ClientWindowBits bytes.
func (d *deflateState) keepWindow(msg []byte) {
	w := 1 << d.p.ClientWindowBits
	if d.dict == nil {
		d.dict = getBuf(w)
	}
	dict := *d.dict
	switch {
	case len(msg) >= w:
		dict = append(dict[:0], msg[len(msg)-w:]...)
	case len(dict)+len(msg) <= w:
		dict = append(dict, msg...)
	default:
		drop := len(dict) + len(msg) - w
		copy(dict, dict[drop:])
		dict = append(dict[:len(dict)-drop], msg...)
	}
	*d.dict = dict
}

// sink lets a compressor write into a pooled buffer.
type sink struct{ buf *[]byte }

func (s *sink) Write(p []byte) (int, error) {
	*s.buf = append(*s.buf, p...)
	return len(p), nil
}

var sinks = sync.Pool{New: func() any { return new(sink) }}

// Compressors pooled by configuration: windowed ones by window bits, full
// window ones by level.
var (
	windowWriters [16]sync.Pool
	levelWriters  [10]sync.Pool
)

func getWriter(bits, level int, dst io.Writer) *flate.Writer {
	pool := &levelWriters[level]
	if bits < 15 {
		pool = &windowWriters[bits]
	}
	if v := pool.Get(); v != nil {
		w := v.(*flate.Writer)
		w.Reset(dst)
		return w
	}
	var w *flate.Writer
	if bits < 15 {
		w, _ = flate.NewWriterWindow(dst, 1<<bits)
	} else {
		w, _ = flate.NewWriter(dst, level)
	}
	return w
}

func putWriter(w *flate.Writer, bits, level int) {
	w.Reset(nil)
	if bits < 15 {
		windowWriters[bits].Put(w)
	} else {
		levelWriters[level].Put(w)
	}
}

// compressedFrame compresses p and returns a pooled buffer and the frame
// in it (header with RSV1, then the compressed payload), or nil when
// compressing does not make the message smaller (without context takeover
// it is then sent as it is).
//
// With context takeover the caller holds d.zmu until the frame is queued.
func (d *deflateState) compressedFrame(op opcode, p []byte) (*[]byte, []byte) {
	if d.p.ServerNoContextTakeover {
		return compressOnce(op, p, d.p.ServerWindowBits, d.p.Level)
	}
	buf := frameBuf(len(p))
	if d.zw == nil {
		d.zw = getWriter(d.p.ServerWindowBits, d.p.Level, &d.sink)
	}
	d.sink.buf = buf
	d.zw.Write(p)
	d.zw.Flush()
	d.sink.buf = nil
	d.lastUse = time.Now()
	d.armIdle()
	// With context takeover the compressed form is sent even if it is not
	// smaller: the compressor's window already holds p.
	return buf, finishFrame(buf, op)
}

// statelessMax is the largest message the stateless encoder compresses;
// above it a pooled compressor, reset for the message, is faster and
// compresses better (BenchmarkStatelessVsPooled: 1.5 times faster at 64
// KiB, level 1, slightly slower at 16 KiB).
const statelessMax = 32 << 10

// compressOnce compresses p as a message on its own, for a peer whose
// window is 2^bits bytes, or returns nil if that does not make it smaller.
func compressOnce(op opcode, p []byte, bits, level int) (*[]byte, []byte) {
	buf := frameBuf(len(p))
	s := sinks.Get().(*sink)
	s.buf = buf
	if len(p) <= statelessMax && (bits == 15 || len(p) <= 1<<bits) {
		// Back-references cannot reach further than the message itself, so
		// the stateless encoder is safe for any window the message fits.
		flate.StatelessDeflate(s, p, false, nil)
	} else {
		w := getWriter(bits, level, s)
		w.Write(p)
		w.Flush()
		putWriter(w, bits, level)
	}
	s.buf = nil
	sinks.Put(s)
	frame := finishFrame(buf, op)
	if len(*buf)-maxHeaderSize >= len(p) {
		putBuf(buf)
		return nil, nil
	}
	return buf, frame
}

// frameBuf returns a buffer for compressing n bytes, with room for the
// header in front.
func frameBuf(n int) *[]byte {
	buf := getBuf(maxHeaderSize + n + n/64 + 32)
	*buf = (*buf)[:maxHeaderSize]
	return buf
}

// finishFrame strips the flush marker the compressor left at the end (RFC
// 7692 §7.2.1) and writes the header, with RSV1, in front of the payload.
func finishFrame(buf *[]byte, op opcode) []byte {
	out := *buf
	if n := len(out); n >= maxHeaderSize+4 && out[n-4] == 0 && out[n-3] == 0 && out[n-2] == 0xff && out[n-1] == 0xff {
		out = out[:n-4]
	}
	*buf = out
	var hdr [maxHeaderSize]byte
	hn := putHeader(&hdr, true, bitRSV1, op, len(out)-maxHeaderSize)
	copy(out[maxHeaderSize-hn:], hdr[:hn])
	return out[maxHeaderSize-hn:]
}

// resetContext drops the compressor after a compressed message could not
// be sent: its window now holds bytes the peer never received. Callers hold
// d.zmu.
func (d *deflateState) resetContext() {
	if d.zw != nil {
		putWriter(d.zw, d.p.ServerWindowBits, d.p.Level)
		d.zw = nil
	}
}

// armIdle makes sure a timer will return the compressor once the
// connection stops sending. Callers hold d.zmu.
func (d *deflateState) armIdle() {
	if d.timer == nil {
		d.timer = time.AfterFunc(compressorIdle, d.idleCheck)
	}
}

func (d *deflateState) idleCheck() {
	d.zmu.Lock()
	defer d.zmu.Unlock()
	if d.closed || d.zw == nil {
		d.timer = nil
		return
	}
	if idle := time.Since(d.lastUse); idle < compressorIdle {
		d.timer.Reset(compressorIdle - idle)
		return
	}
	d.resetContext()
	d.timer = nil
}

// release returns everything the connection holds. The reader calls it
// when the connection ends.
func (d *deflateState) release() {
	putBuf(d.dict)
	d.dict = nil
	d.zmu.Lock()
	d.closed = true
	d.resetContext()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.zmu.Unlock()
}
