package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
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

// TestOfferKeepsWhatWasNotSent: a frame that did not reach a dead
// connection whole is handed back (so a held client's message can wait
// for the producer's return): the peer cannot have read part of a frame
// as a frame.
func TestOfferKeepsWhatWasNotSent(t *testing.T) {
	for _, written := range []int{0, 3, 9} {
		t.Run(fmt.Sprintf("%d of 10 bytes written", written), func(t *testing.T) {
			var released atomic.Int64
			s := NewSender(failWriter{written}, 1<<10, func(*[]byte) { released.Add(1) }, func(error) {})
			b := []byte("0123456789")
			if err := s.Offer(&b); !errors.Is(err, ErrNotSent) {
				t.Fatalf("Offer: %v", err)
			}
			// The connection is dead now: the next offer is refused untouched.
			if err := s.Offer(&b); !errors.Is(err, ErrNotSent) {
				t.Fatalf("Offer after failure: %v", err)
			}
			if released.Load() != 0 || s.Queued() != 0 {
				t.Fatalf("released %d buffers, %d bytes still counted as queued", released.Load(), s.Queued())
			}
		})
	}
}

// budgetWriter takes budget bytes in all, then fails, as a connection
// whose peer died does; its first Write waits for gate.
type budgetWriter struct {
	gate   chan struct{}
	budget int
	got    []byte
}

func (w *budgetWriter) Write(p []byte) (int, error) {
	if w.gate != nil {
		<-w.gate
		w.gate = nil
	}
	n := min(w.budget, len(p))
	w.budget -= n
	w.got = append(w.got, p[:n]...)
	if n < len(p) {
		return n, errors.New("broken pipe")
	}
	return n, nil
}

// queueFive has frame "0" (ten bytes of '0') written inline, waiting in
// w's gate, and "1" to "4" queued behind it.
func queueFive(t *testing.T, s *Sender) {
	f := bytes.Repeat([]byte{'0'}, 10)
	go s.Send(&f, true)
	synctest.Wait()
	for i := 1; i < 5; i++ {
		f := bytes.Repeat([]byte{byte('0' + i)}, 10)
		if err := s.Send(&f, false); err != nil {
			t.Fatal(err)
		}
	}
}

// frameNames names frames by their first byte, checking each came back
// whole.
func frameNames(t *testing.T, frames []*[]byte) string {
	var got []byte
	for _, f := range frames {
		if len(*f) != 10 {
			t.Fatalf("a frame came back with %d bytes", len(*f))
		}
		got = append(got, (*f)[0])
	}
	return string(got)
}

// TestTakeUnsent: when the connection fails, every frame queued and not
// written whole comes back from TakeUnsent, oldest first, whether it was
// in the failed write (whole or cut) or still waiting behind it; the
// frames written whole are released.
func TestTakeUnsent(t *testing.T) {
	for _, tc := range []struct {
		budget int
		unsent string
	}{
		{10, "1234"}, // the queued write fails at once
		{20, "234"},  // at a frame's boundary
		{25, "234"},  // in the middle of a frame, which comes back whole
		{49, "4"},    // one byte short
		{50, ""},     // all written
		{1000, ""},   // and more to spare
	} {
		t.Run(fmt.Sprintf("budget %d", tc.budget), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &budgetWriter{gate: make(chan struct{}), budget: tc.budget}
				var released atomic.Int64
				s := NewSender(w, 1<<10, func(*[]byte) { released.Add(1) }, func(error) {})
				queueFive(t, s)
				close(w.gate)
				synctest.Wait() // written, or failed
				got := frameNames(t, s.TakeUnsent())
				if got != tc.unsent {
					t.Fatalf("unsent frames %q, want %q (wrote %q)", got, tc.unsent, w.got)
				}
				if int(released.Load())+len(got) != 5 {
					t.Fatalf("%d released and %d unsent of 5 frames", released.Load(), len(got))
				}
				if s.Queued() != 0 {
					t.Fatalf("%d bytes still counted as queued", s.Queued())
				}
				if err := s.Send(new([]byte), false); err == nil {
					t.Fatal("a Send after TakeUnsent succeeded")
				}
			})
		})
	}
}

// TestTakeUnsentWaitsForTheWrite: TakeUnsent called while a write is in
// progress returns once it has ended, with what was queued behind it,
// which is no longer written.
func TestTakeUnsentWaitsForTheWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &budgetWriter{gate: make(chan struct{}), budget: 1000}
		s := NewSender(w, 1<<10, func(*[]byte) {}, func(error) {})
		queueFive(t, s)
		took := make(chan []*[]byte, 1)
		go func() { took <- s.TakeUnsent() }()
		synctest.Wait()
		select {
		case <-took:
			t.Fatal("TakeUnsent did not wait for the write in progress")
		default:
		}
		close(w.gate)
		if got := frameNames(t, <-took); got != "1234" || string(w.got) != strings.Repeat("0", 10) {
			t.Fatalf("unsent %q, written %q", got, w.got)
		}
	})
}
