package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/recovered"
)

// Sender writes frames to a connection from any goroutine, both for the
// gateway's side of a producer connection and for the producer SDK's.
//
// A frame sent when nothing is queued is written at once by the sending
// goroutine; otherwise it joins a queue that a writer goroutine drains in
// batches (one vectored write each) and that exists only while there is
// something to write. The queue is bounded in bytes: Send with wait blocks
// while it is full, which is how a slow peer slows down whoever feeds it.
//
// A frame that was queued but never written whole when the connection
// fails is not lost to the caller: TakeUnsent hands those frames back,
// in order (the peer cannot have read a part of a frame as a frame, so
// sending it again elsewhere duplicates nothing).
type Sender struct {
	w       io.Writer
	limit   int
	release func(*[]byte)
	onError func(error)

	// Waited, if set, is told how long the oldest frame of each write
	// waited from Send to the end of its write: the time a client's
	// message takes to reach the producer's socket. Set before use.
	Waited func(time.Duration)

	mu      sync.Mutex
	space   *sync.Cond
	q       []*[]byte
	qSince  time.Time // when the oldest frame in q was queued
	qBytes  int
	writing bool
	dead    bool
	// unsent is the frames of a write that failed that did not reach
	// the connection whole; they are older than everything in q.
	unsent []*[]byte
	taken  bool // TakeUnsent has run: a failed write releases its frames
}

// NewSender writes to w with a queue of limit bytes. release gets each
// frame's buffer back once written or dropped; onError is called once
// with the first write error (after which every Send fails).
func NewSender(w io.Writer, limit int, release func(*[]byte), onError func(error)) *Sender {
	s := &Sender{w: w, limit: limit, release: release, onError: onError}
	s.space = sync.NewCond(&s.mu)
	return s
}

// Send queues or writes one frame; its buffer passes to the Sender. With
// wait, a full queue blocks the caller, and an idle connection is written
// inline. Without, the frame is queued whatever the queue holds (for the
// few frames that must not be lost) and never written by the caller,
// which may be a goroutine that must not block on the connection.
func (s *Sender) Send(frame *[]byte, wait bool) error {
	return s.send(frame, wait, false)
}

// ErrNotSent is returned by Offer for a frame that did not reach the
// connection: its buffer still belongs to the caller.
var ErrNotSent = errors.New("wire: connection closed; frame not sent")

// Offer is Send with wait, for a frame the caller can deliver some other
// way (a client's message to a producer that has just gone away, which
// waits for the next one): when the connection is already dead, or an
// inline write fails before writing all of it, it returns ErrNotSent and
// the buffer stays the caller's. A frame it queued that is never written
// whole comes back from TakeUnsent.
func (s *Sender) Offer(frame *[]byte) error {
	return s.send(frame, true, true)
}

func (s *Sender) send(frame *[]byte, wait, keep bool) error {
	s.mu.Lock()
	for wait && !s.dead && s.qBytes > 0 && s.qBytes+len(*frame) > s.limit {
		s.space.Wait()
	}
	if s.dead {
		s.mu.Unlock()
		if keep {
			return ErrNotSent
		}
		s.release(frame)
		return net.ErrClosed
	}
	s.qBytes += len(*frame)
	if wait && !s.writing {
		s.writing = true
		s.mu.Unlock()
		var t0 time.Time
		if s.Waited != nil {
			t0 = time.Now()
		}
		n, err := s.w.Write(*frame)
		if s.Waited != nil && err == nil {
			s.Waited(time.Since(t0))
		}
		if keep && err != nil && n < len(*frame) {
			s.done(nil, err, len(*frame))
			return ErrNotSent
		}
		if s.done([]*[]byte{frame}, err, 0) {
			go s.writeLoop()
		}
		return err
	}
	if len(s.q) == 0 && s.Waited != nil {
		s.qSince = time.Now()
	}
	s.q = append(s.q, frame)
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		go s.writeLoop()
	}
	return nil
}

// done accounts for written frames and reports whether more are queued,
// in which case the caller stays the writer.
// extra is bytes counted in the queue that are not in batch (a frame
// handed back to its caller). unsent is the frames of a failed write that
// were not written whole, kept for TakeUnsent.
func (s *Sender) done(batch []*[]byte, err error, extra int, unsent ...*[]byte) bool {
	n := extra
	for _, b := range batch {
		n += len(*b)
		s.release(b)
	}
	for _, b := range unsent {
		n += len(*b)
	}
	s.mu.Lock()
	if s.taken {
		for _, b := range unsent {
			s.release(b)
		}
	} else {
		s.unsent = append(s.unsent, unsent...)
	}
	s.qBytes -= n
	s.space.Broadcast()
	first := err != nil && !s.dead
	if err != nil {
		s.dead = true
	}
	more := len(s.q) > 0 && !s.dead
	if !more {
		s.writing = false
	}
	s.mu.Unlock()
	if first {
		s.onError(err)
	}
	return more
}

// writeLoop drains the queue. A panic here fails the connection (through
// the error callback) rather than the process.
func (s *Sender) writeLoop() {
	defer func() {
		if v := recover(); v != nil {
			recovered.Report("producer connection writer", v)
			s.mu.Lock()
			s.writing = false
			s.mu.Unlock()
			s.done(nil, fmt.Errorf("writer panicked: %v", v), 0)
		}
	}()
	var bufs net.Buffers
	for {
		s.mu.Lock()
		if len(s.q) == 0 || s.dead {
			s.writing = false
			s.space.Broadcast() // TakeUnsent waits for the writer
			s.mu.Unlock()
			return
		}
		batch := s.q
		since := s.qSince
		s.q = nil
		s.mu.Unlock()
		bufs = bufs[:0]
		for _, b := range batch {
			bufs = append(bufs, *b)
		}
		w := bufs
		n, err := w.WriteTo(s.w)
		clear(bufs)
		if s.Waited != nil && err == nil && !since.IsZero() {
			s.Waited(time.Since(since))
		}
		whole := len(batch)
		if err != nil {
			// The frames from the first one not written whole on were
			// not sent: they go back to whoever takes them.
			whole = 0
			for end := int64(0); whole < len(batch); whole++ {
				if end += int64(len(*batch[whole])); end > n {
					break
				}
			}
		}
		if !s.done(batch[:whole], err, 0, batch[whole:]...) {
			return
		}
	}
}

// TakeUnsent ends the Sender, as Close does, and returns the frames that
// were given to it and never written whole, oldest first; their buffers
// are the caller's. It waits for a write in progress to end, so the
// connection should be closed first. A write that fails after it
// releases its frames.
func (s *Sender) TakeUnsent() []*[]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	s.space.Broadcast()
	for s.writing {
		s.space.Wait()
	}
	s.taken = true
	frames := append(s.unsent, s.q...)
	s.unsent, s.q, s.qBytes = nil, nil, 0
	return frames
}

// Close fails every waiting and later Send and drops what is queued.
func (s *Sender) Close() {
	s.mu.Lock()
	s.dead, s.taken = true, true
	q := append(s.unsent, s.q...)
	s.unsent, s.q = nil, nil
	s.qBytes = 0
	s.space.Broadcast()
	s.mu.Unlock()
	for _, b := range q {
		s.release(b)
	}
}

// Idle reports whether nothing is queued or being written.
func (s *Sender) Idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.writing || s.dead
}

// Queued returns the bytes queued or being written.
func (s *Sender) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.qBytes
}
