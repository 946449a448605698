package websocket

import (
	"bufio"
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/wstest"
)

// recorder is a transport that keeps what the engine writes. With
// nonblocking set it also accepts inline writes, taking at most limit bytes
// per call when limit > 0, to exercise partial writes.
type recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	closed bool
	limit  int
	// block makes blocking writes wait until unblocked (a peer that does
	// not read); nonblocking writes then accept nothing.
	block chan struct{}
	// in is what ReadTo delivers, one chunk per call; a nil chunk makes
	// ReadTo return ErrSuspended, and a closed channel io.EOF.
	in       chan []byte
	lingered time.Duration
}

func (r *recorder) ReadTo(w io.Writer) error {
	if r.in == nil {
		return io.EOF
	}
	p, ok := <-r.in
	switch {
	case !ok:
		return io.EOF
	case p == nil:
		return ErrSuspended
	}
	_, err := w.Write(p)
	return err
}

func (r *recorder) Linger(d time.Duration) {
	r.mu.Lock()
	r.lingered = d
	r.mu.Unlock()
}

func (r *recorder) WriteBuffers(bufs [][]byte) error {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	for _, b := range bufs {
		r.buf.Write(b)
	}
	return nil
}

func (r *recorder) Close() error {
	r.mu.Lock()
	if !r.closed && r.block != nil {
		close(r.block)
	}
	r.closed = true
	r.mu.Unlock()
	return nil
}

func (r *recorder) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// frames parses everything written so far.
func (r *recorder) frames(t testing.TB) []wstest.Received {
	t.Helper()
	r.mu.Lock()
	data := append([]byte(nil), r.buf.Bytes()...)
	r.mu.Unlock()
	c := &wstest.Conn{R: bufio.NewReader(bytes.NewReader(data))}
	var out []wstest.Received
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return out
		}
		if f.Masked {
			t.Errorf("server frame is masked: %v", f)
		}
		out = append(out, f)
	}
}

type nbRecorder struct{ recorder }

func (r *nbRecorder) TryWriteBuffers(bufs [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrClosed
	}
	if r.block != nil {
		return 0, nil
	}
	n := 0
	for _, b := range bufs {
		if r.limit > 0 && n+len(b) > r.limit {
			b = b[:r.limit-n]
		}
		r.buf.Write(b)
		n += len(b)
		if r.limit > 0 && n == r.limit {
			break
		}
	}
	return n, nil
}

type msg struct {
	typ  MessageType
	data string
}

// handler records what the engine delivers.
type handler struct {
	mu     sync.Mutex
	msgs   []msg
	pongs  []string
	status *CloseStatus
	closed chan struct{}
	onMsg  func(c *Conn, typ MessageType, p []byte)
}

func newHandler() *handler { return &handler{closed: make(chan struct{})} }

func (h *handler) OnMessage(c *Conn, typ MessageType, p []byte) {
	h.mu.Lock()
	h.msgs = append(h.msgs, msg{typ, string(p)})
	fn := h.onMsg
	h.mu.Unlock()
	if fn != nil {
		fn(c, typ, p)
	}
}

func (h *handler) OnPong(c *Conn, p []byte) {
	h.mu.Lock()
	h.pongs = append(h.pongs, string(p))
	h.mu.Unlock()
}

func (h *handler) OnClose(c *Conn, s CloseStatus) {
	h.mu.Lock()
	h.status = &s
	h.mu.Unlock()
	close(h.closed)
}

func (h *handler) messages() []msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]msg(nil), h.msgs...)
}

func (h *handler) waitClosed(t testing.TB, d time.Duration) CloseStatus {
	t.Helper()
	select {
	case <-h.closed:
	case <-time.After(d):
		t.Fatalf("OnClose not called within %v", d)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.status
}

// feedAll feeds chunks until Feed fails and returns the error.
func feedAll(c *Conn, chunks ...[]byte) error {
	for _, ch := range chunks {
		if err := c.feed(append([]byte(nil), ch...)); err != nil {
			return err
		}
	}
	return nil
}

// bytewise splits data into one-byte chunks.
func bytewise(data []byte) [][]byte {
	out := make([][]byte, len(data))
	for i := range data {
		out[i] = data[i : i+1]
	}
	return out
}
