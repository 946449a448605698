package tlsrec

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
)

// Reasons Take declines, for the daemon's counters. Each leaves the
// connection with crypto/tls, unharmed.
var (
	ErrNotTapped     = errors.New("tlsrec: connection not accepted by this package's listener")
	ErrVersion       = errors.New("tlsrec: not TLS 1.3")
	ErrNotRecorded   = errors.New("tlsrec: records were not followed (an earlier request, or more than 32 KiB before the upgrade)")
	ErrSequence      = errors.New("tlsrec: records do not open in sequence")
	ErrPostHandshake = errors.New("tlsrec: a post-handshake message or alert came before the upgrade")
)

// Take takes tc's record layer over. tc must have been accepted by a
// listener from NewListener, have finished its handshake, and have
// flushed everything written to it; nothing may read or write tc
// concurrently, and nothing may use it afterwards if Take succeeds.
//
// It returns the record layer, the socket under tc, and the plaintext tc
// had received but not yet returned to a reader, which comes first in the
// stream after anything the caller had read ahead. The layer holds the
// bytes of a record the socket delivered only in part; the caller's first
// Open continues it.
//
// On an error the connection stays with crypto/tls: extra is still the
// plaintext taken out of tc, which the caller must treat as read ahead.
// Only an error that is not one of the Err values above means tc itself
// failed.
func Take(tc *tls.Conn) (l *Layer, raw net.Conn, extra []byte, err error) {
	t, ok := tc.NetConn().(*tap)
	if !ok {
		return nil, nil, nil, ErrNotTapped
	}
	defer func() {
		if err != nil {
			t.stop()
			t.mu.Lock()
			t.draining = false // crypto/tls reads the socket again
			t.mu.Unlock()
		}
	}()
	if _, ok := t.Conn.(syscall.Conn); !ok {
		return nil, nil, nil, ErrNotTapped
	}
	st := tc.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		return nil, nil, nil, ErrVersion
	}
	s := suiteByID(st.CipherSuite)
	if s == nil {
		return nil, nil, nil, ErrVersion
	}
	t.mu.Lock()
	stopped, cs, ss := t.stopped, t.clientSecret, t.serverSecret
	rd, wr := t.rd, t.wr
	t.mu.Unlock()
	if stopped || cs == nil || ss == nil || !rd.on || !wr.on {
		return nil, nil, nil, ErrNotRecorded
	}
	// What this side sent: every application record, and the last must be
	// whole (tc flushed it).
	// The layer's secrets are copies: the tap's are cleared when it stops.
	var out direction
	if err := out.set(s, bytes.Clone(ss)); err != nil {
		return nil, nil, nil, err
	}
	if tail, err := count(&out, wr.rec, false); err != nil {
		return nil, nil, nil, err
	} else if len(tail) > 0 {
		return nil, nil, nil, ErrNotRecorded
	}
	var in direction
	if err := in.set(s, bytes.Clone(cs)); err != nil {
		return nil, nil, nil, err
	}
	tail, err := count(&in, rd.rec, true)
	if err != nil {
		return nil, nil, nil, err
	}
	// Everything tc holds in plaintext, and every whole record it holds
	// undecrypted, comes out now; what stays inside it is the partial
	// record tail, which the layer continues.
	t.mu.Lock()
	t.draining = true
	t.mu.Unlock()
	extra, err = drain(tc)
	if err != nil {
		return nil, nil, extra, err
	}
	l = &Layer{in: in, out: out}
	// The recording goes with the tap: the partial record is kept as any
	// record the socket delivered in part (tail is less than a record, so
	// nothing is opened).
	if err := l.Open(tail, io.Discard); err != nil {
		return nil, nil, extra, ErrSequence
	}
	raw = t.Conn
	t.stop()
	return l, raw, extra, nil
}

// count opens the whole records in rec, in order, with d at its next
// sequence number, which ends after the last of them. Records before the
// first that opens are the handshake flight under other keys and are
// skipped; every record after it must open, and with appOnly must carry
// application data. It returns the bytes after the last whole record.
// rec is overwritten.
func count(d *direction, rec []byte, appOnly bool) (tail []byte, err error) {
	opened := false
	for len(rec) >= headerLen {
		size := headerLen + int(binary.BigEndian.Uint16(rec[3:]))
		if len(rec) < size {
			break
		}
		r := rec[:size]
		rec = rec[size:]
		var pt []byte
		ok := r[0] == typeApplicationData
		if ok {
			pt, ok = d.open(r)
		}
		if !ok {
			if opened {
				return nil, ErrSequence
			}
			continue
		}
		opened = true
		if typ, _, ok := innerType(pt); appOnly && (!ok || typ != typeApplicationData) {
			return nil, ErrPostHandshake
		}
	}
	return rec, nil
}

// drain reads tc until it would have to read the socket, which the tap
// refuses.
func drain(tc *tls.Conn) ([]byte, error) {
	var extra []byte
	var buf [4096]byte
	for {
		n, err := tc.Read(buf[:])
		extra = append(extra, buf[:n]...)
		if err == nil {
			continue
		}
		if errors.Is(err, errDrained) {
			return extra, nil
		}
		return extra, err
	}
}

// Forget ends the recording of c, a connection from NewListener, which
// will not be taken over: the daemon calls it when an HTTP keep-alive
// connection goes idle after a request that was not an upgrade.
func Forget(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		if t, ok := tc.NetConn().(*tap); ok {
			t.stop()
		}
	}
}
