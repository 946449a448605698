package netconn

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"github.com/wsgate/wsgate/frontdoor/tlsrec"
	"github.com/wsgate/wsgate/internal/bufpool"
)

// The write side of a connection whose TLS record layer was taken over:
// the engine's bytes are sealed into records in one pooled buffer and
// written like a plain socket's.

// sealed is a taken-over connection's record layer, and what a write the
// socket took only part of left: the rest of the record it had begun
// (pend), which goes out before anything else, and that record's
// plaintext (owed bytes), which the engine gives again and which is
// skipped then. The writer's fields are used by one writer at a time (the
// engine's write token), and by Close only when no blocking write holds
// the stream.
type sealed struct {
	rec       *tlsrec.Layer
	pend      *[]byte
	owed      int
	alertSent bool
}

// sealNext seals bufs, less the bytes a record completed from pend
// already carried (owed), into a pooled buffer; nil when bufs held nothing
// more. It returns the bytes skipped and bufs' total.
func (s *sealed) sealNext(bufs [][]byte) (out *[]byte, skip, total int) {
	for _, b := range bufs {
		total += len(b)
	}
	skip = s.owed
	if skip >= total {
		s.owed = skip - total
		return nil, total, total
	}
	s.owed = 0
	out = bufpool.Get(tlsrec.SealedLen(total - skip))
	*out = s.rec.Seal(*out, bufs, skip)
	return out, skip, total
}

// trySealed is tryWriteBuffers for a taken-over connection; under mu.
func (d *conn) trySealed(bufs [][]byte) (int, error) {
	if d.sl.pend != nil {
		w, err := d.tryWriteLocked(unsafe.Slice(d.sl.pend, 1))
		if err != nil {
			return 0, err
		}
		if w < len(*d.sl.pend) {
			*d.sl.pend = (*d.sl.pend)[w:]
			return 0, nil
		}
		bufpool.Put(d.sl.pend)
		d.sl.pend = nil
	}
	out, skip, total := d.sl.sealNext(bufs)
	if out == nil {
		return total, nil
	}
	w, err := d.tryWriteLocked(unsafe.Slice(out, 1))
	if err != nil {
		bufpool.Put(out)
		return skip, err
	}
	if w == len(*out) {
		bufpool.Put(out)
		return total, nil
	}
	done, keep, owed := d.sl.rec.Unsent(w)
	if keep > w {
		p := bufpool.Get(keep - w)
		*p = append(*p, (*out)[w:keep]...)
		d.sl.pend, d.sl.owed = p, owed
	}
	bufpool.Put(out)
	return skip + done, nil
}

// writeSealed is WriteBuffers for a taken-over connection, on the stream
// holdStream gave.
func (d *conn) writeSealed(nc stream, bufs [][]byte) error {
	if p := d.sl.pend; p != nil {
		d.sl.pend = nil
		_, err := nc.Write(*p)
		bufpool.Put(p)
		if err != nil {
			return err
		}
	}
	out, _, _ := d.sl.sealNext(bufs)
	if out == nil {
		return nil
	}
	_, err := nc.Write(*out)
	bufpool.Put(out)
	return err
}

// sendAlertLocked sends the record layer's closing alert (close_notify,
// or the alert of a failed read) once, without waiting, when the stream
// is free: no blocking write holds it and no record is half sent. Under
// mu, before the socket closes.
func (d *conn) sendAlertLocked() {
	if d.sl == nil || d.sl.alertSent || d.writers > 0 || d.sl.pend != nil || (d.nc == nil && d.rawFD < 0) {
		return
	}
	d.sl.alertSent = true
	b := bufpool.Get(64)
	*b = d.sl.rec.SealAlert(*b)
	d.tryWriteLocked(unsafe.Slice(b, 1))
	bufpool.Put(b)
}

// takeovers counts tlsrec.Take's results for Takeovers.
var takeovers struct {
	taken, notTLS13, notRecorded, other, disabled atomic.Uint64
}

func countTakeover(err error) {
	c := &takeovers
	switch {
	case err == nil:
		c.taken.Add(1)
	case errors.Is(err, tlsrec.ErrNotTapped):
		// A listener with record_layer: go, crypto/tls's own.
		c.disabled.Add(1)
	case errors.Is(err, tlsrec.ErrVersion):
		c.notTLS13.Add(1)
	case errors.Is(err, tlsrec.ErrNotRecorded):
		c.notRecorded.Add(1)
	default:
		c.other.Add(1)
	}
}

// TakeoverCounts are the TLS WebSockets whose record layer was taken over
// (and so park as small as plain ones), and those that stayed with
// crypto/tls, by reason.
type TakeoverCounts struct {
	Taken    uint64
	TLS12    uint64 // the client negotiated TLS 1.2
	Earlier  uint64 // the connection carried other requests (or more than 32 KiB) before its upgrade
	Other    uint64 // anything else tlsrec.Take declined
	Disabled uint64 // the listener's record_layer is go
}

// Takeovers reports the counts so far.
func Takeovers() TakeoverCounts {
	c := &takeovers
	return TakeoverCounts{c.taken.Load(), c.notTLS13.Load(), c.notRecorded.Load(), c.other.Load(), c.disabled.Load()}
}
