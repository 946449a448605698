package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// slowWriter takes a few bytes per call, slowly, so frames queue up.
type slowWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(10 * time.Microsecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestSenderOrderAndRelease(t *testing.T) { synctest.Test(t, testSenderOrderAndRelease) }

func testSenderOrderAndRelease(t *testing.T) {
	w := &slowWriter{}
	var released atomic.Int64
	s := NewSender(w, 256, func(*[]byte) { released.Add(1) }, func(err error) { t.Error(err) })
	const senders, per = 8, 200
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				b := make([]byte, 8)
				binary.BigEndian.PutUint32(b, uint32(g))
				binary.BigEndian.PutUint32(b[4:], uint32(i))
				if err := s.Send(&b, g%2 == 0); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// The writer drains what is queued on the bubble's clock.
	for !s.Idle() {
		time.Sleep(time.Millisecond)
	}
	if released.Load() != senders*per {
		t.Fatalf("%d buffers released, want %d", released.Load(), senders*per)
	}
	next := make([]uint32, senders)
	data := w.buf.Bytes()
	for len(data) >= 8 {
		g, i := binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:])
		if i != next[g] {
			t.Fatalf("sender %d: frame %d after %d", g, i, next[g])
		}
		next[g]++
		data = data[8:]
	}
	for g, n := range next {
		if n != per {
			t.Fatalf("sender %d: %d frames written", g, n)
		}
	}
}

type blockedWriter struct{ unblock chan struct{} }

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.unblock
	return 0, errors.New("closed")
}

func TestSenderBackpressureAndClose(t *testing.T) { synctest.Test(t, testSenderBackpressureAndClose) }

func testSenderBackpressureAndClose(t *testing.T) {
	w := &blockedWriter{unblock: make(chan struct{})}
	var failed atomic.Int32
	s := NewSender(w, 100, func(*[]byte) {}, func(error) { failed.Add(1) })
	b := make([]byte, 60)
	go s.Send(&b, true) // written inline: blocks in Write
	synctest.Wait()
	c := make([]byte, 60)
	waited := make(chan error, 1)
	go func() { waited <- s.Send(&c, true) }()
	synctest.Wait()
	select {
	case <-waited:
		t.Fatal("Send did not wait on a full queue")
	default:
	}
	// A frame that must not be lost is queued even so.
	d := make([]byte, 60)
	if err := s.Send(&d, false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := <-waited; err == nil {
		t.Fatal("a waiting Send succeeded after Close")
	}
	close(w.unblock)
	synctest.Wait()
	if failed.Load() != 0 {
		t.Fatal("onError after Close")
	}
}

type failWriter struct{ n int }

func (w failWriter) Write(p []byte) (int, error) { return min(w.n, len(p)), errors.New("broken pipe") }

// TestOfferKeepsWhatWasNotSent: a frame that never reached a dead
// connection is handed back (so a held client's message can wait for the
// producer's return), one that was partly written is not.
func TestOfferKeepsWhatWasNotSent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		written int
		want    error
		release int64
	}{
		{"nothing written", 0, ErrNotSent, 0},
		{"partly written", 3, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var released atomic.Int64
			s := NewSender(failWriter{tc.written}, 1<<10, func(*[]byte) { released.Add(1) }, func(error) {})
			b := []byte("0123456789")
			err := s.Offer(&b)
			if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && (err == nil || errors.Is(err, ErrNotSent)) {
				t.Fatalf("Offer: %v", err)
			}
			if released.Load() != tc.release {
				t.Fatalf("released %d buffers, want %d", released.Load(), tc.release)
			}
			// The connection is dead now: the next offer is refused untouched.
			if err := s.Offer(&b); !errors.Is(err, ErrNotSent) || released.Load() != tc.release {
				t.Fatalf("Offer after failure: %v, released %d", err, released.Load())
			}
			if s.Queued() != 0 {
				t.Fatalf("%d bytes still counted as queued", s.Queued())
			}
		})
	}
}
