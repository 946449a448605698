package tlsrec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/wsgate/wsgate/internal/bufpool"
)

// Record sizes (RFC 8446 §5.1, §5.2).
const (
	headerLen     = 5
	maxPlaintext  = 1 << 14
	maxCiphertext = maxPlaintext + 256
	tagLen        = 16
	// recordOverhead is what sealing adds to a record's plaintext: the
	// header, the inner content type and the AEAD tag (all three TLS 1.3
	// AEADs have 16-byte tags).
	recordOverhead = headerLen + 1 + tagLen
	// keyUpdateLen is a whole KeyUpdate record (§4.6.3): a 4-byte
	// handshake header and one byte of body, sealed.
	keyUpdateLen = recordOverhead + 5
)

// Content types (RFC 8446 §5.1).
const (
	typeAlert           = 21
	typeHandshake       = 22
	typeApplicationData = 23
	typeKeyUpdate       = 24 // handshake message type (§4)
)

// Alert descriptions (RFC 8446 §6).
const (
	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertIllegalParameter  = 47
	alertDecodeError       = 50
	alertInternalError     = 80
	alertUserCanceled      = 90
)

// keyUpdateAfter is the number of records sent under one key before this
// side updates it: RFC 8446 §5.5 allows AES-GCM 2^24.5 full-size records.
// A variable so that a test can reach it.
var keyUpdateAfter uint64 = 1 << 24

// AlertError is a failure of the record layer: the alert this side sends
// (Remote false), or the one the peer sent (Remote true).
type AlertError struct {
	Alert  uint8
	Remote bool
	Reason string
}

func (e *AlertError) Error() string {
	if e.Remote {
		return fmt.Sprintf("tls: peer sent alert %d", e.Alert)
	}
	return fmt.Sprintf("tls: %s (alert %d)", e.Reason, e.Alert)
}

func fail(alert uint8, reason string) error { return &AlertError{Alert: alert, Reason: reason} }

// Layer is a TLS 1.3 connection's record layer after the handshake.
//
// Invariants: Open is called by one goroutine at a time (the reader);
// Seal, Unsent and SealAlert by one goroutine at a time (the writer). The
// two sides share only updateOut and alert, which are atomic: the reader
// learns that the peer asked for a KeyUpdate, and the writer sends it
// before its next record, as §4.6.3 requires.
type Layer struct {
	in  direction
	out direction

	carry *[]byte // an incomplete record; nil when input ends on a record boundary
	hand  []byte  // a handshake message split across records

	updateOut atomic.Bool   // send a KeyUpdate before the next record
	alert     atomic.Uint32 // 1+alert to close with, set by the reader on failure; 0: close_notify; noAlert

	// The last Seal's layout, for Unsent.
	plan struct {
		pre   int    // bytes before the first data record (a KeyUpdate record)
		plain int    // plaintext sealed
		seq0  uint64 // sequence number of the first data record
	}
}

// NewLayer makes a record layer from the two traffic secrets of a
// TLS 1.3 connection using the cipher suite id. in is the secret of the
// peer's records, out of this side's; each starts at sequence number
// inSeq and outSeq.
func NewLayer(id uint16, in, out []byte, inSeq, outSeq uint64) (*Layer, error) {
	s := suiteByID(id)
	if s == nil {
		return nil, fmt.Errorf("tlsrec: cipher suite %#04x is not a TLS 1.3 suite", id)
	}
	l := &Layer{}
	if err := l.in.set(s, in); err != nil {
		return nil, err
	}
	if err := l.out.set(s, out); err != nil {
		return nil, err
	}
	l.in.seq, l.out.seq = inSeq, outSeq
	return l, nil
}

// Pending reports whether the layer holds part of a record it has not
// been able to open yet.
func (l *Layer) Pending() bool { return l.carry != nil }

// Open decrypts the records in p (bytes as read from the socket; they may
// end in the middle of a record, which is kept for the next call) and
// writes their application data to w: once per call, in place in p, which
// it overwrites. It returns io.EOF once the peer's close_notify is read,
// and an *AlertError when the peer's records are not valid; the alert to
// send is then remembered for SealAlert.
func (l *Layer) Open(p []byte, w io.Writer) error {
	if l.carry != nil {
		var err error
		if p, err = l.openCarried(p, w); err != nil || p == nil {
			return err
		}
	}
	out, off := 0, 0
	var err error
	for len(p)-off >= headerLen {
		n := int(binary.BigEndian.Uint16(p[off+3:]))
		if n > maxCiphertext {
			err = l.failed(fail(alertRecordOverflow, "record too long"))
			break
		}
		if len(p)-off < headerLen+n {
			break
		}
		var data []byte
		data, err = l.openRecord(p[off : off+headerLen+n])
		off += headerLen + n
		out += copy(p[out:], data)
		if err != nil {
			break
		}
	}
	if err == nil && off < len(p) {
		c := getCarry()
		*c = append(*c, p[off:]...)
		l.carry = c
	}
	if out > 0 {
		if _, werr := w.Write(p[:out]); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// openCarried completes the carried record from p and opens it. It
// returns the rest of p, or nil if p did not complete it.
func (l *Layer) openCarried(p []byte, w io.Writer) ([]byte, error) {
	c := l.carry
	if len(*c) < headerLen {
		k := min(headerLen-len(*c), len(p))
		*c = append(*c, p[:k]...)
		p = p[k:]
		if len(*c) < headerLen {
			return nil, nil
		}
	}
	n := int(binary.BigEndian.Uint16((*c)[3:]))
	if n > maxCiphertext {
		l.dropCarry()
		return nil, l.failed(fail(alertRecordOverflow, "record too long"))
	}
	k := min(headerLen+n-len(*c), len(p))
	*c = append(*c, p[:k]...)
	p = p[k:]
	if len(*c) < headerLen+n {
		return nil, nil
	}
	data, err := l.openRecord(*c)
	if len(data) > 0 {
		if _, werr := w.Write(data); werr != nil && err == nil {
			err = werr
		}
	}
	l.dropCarry()
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (l *Layer) dropCarry() {
	bufpool.Put(l.carry)
	l.carry = nil
}

// failed remembers a local failure's alert for SealAlert.
func (l *Layer) failed(err error) error {
	var ae *AlertError
	if errors.As(err, &ae) && !ae.Remote {
		l.alert.CompareAndSwap(0, 1+uint32(ae.Alert))
	}
	return err
}

// openRecord opens one whole record in place and returns its application
// data, if any (RFC 8446 §5.2, §5.4).
func (l *Layer) openRecord(rec []byte) ([]byte, error) {
	if rec[0] != typeApplicationData {
		// After the handshake every record is protected, and so has this
		// outer type (§5.1); a change_cipher_spec is no longer allowed (§5).
		return nil, l.failed(fail(alertUnexpectedMessage, "unprotected record after the handshake"))
	}
	pt, ok := l.in.open(rec)
	if !ok {
		return nil, l.failed(fail(alertBadRecordMAC, "record does not authenticate"))
	}
	typ, pt, ok := innerType(pt)
	if !ok {
		return nil, l.failed(fail(alertUnexpectedMessage, "record without a content type"))
	}
	if len(pt) > maxPlaintext {
		return nil, l.failed(fail(alertRecordOverflow, "plaintext too long"))
	}
	if len(l.hand) > 0 && typ != typeHandshake {
		return nil, l.failed(fail(alertUnexpectedMessage, "handshake message interrupted"))
	}
	switch typ {
	case typeApplicationData:
		return pt, nil
	case typeAlert:
		// Alerts are never fragmented or coalesced (§5.1).
		if len(pt) != 2 {
			return nil, l.failed(fail(alertDecodeError, "malformed alert"))
		}
		switch pt[1] {
		case alertCloseNotify:
			return nil, io.EOF
		case alertUserCanceled:
			return nil, nil // a warning; close_notify follows (§6.1)
		}
		// A fatal alert ends the connection with nothing sent back (§6.2).
		l.alert.Store(noAlert)
		return nil, &AlertError{Alert: pt[1], Remote: true}
	case typeHandshake:
		return nil, l.handshake(pt)
	}
	return nil, l.failed(fail(alertUnexpectedMessage, "unknown content type"))
}

// handshake handles a post-handshake message. Of those, a server only
// accepts KeyUpdate (§4.6): it never asks for a certificate after the
// handshake, and a client does not send tickets.
func (l *Layer) handshake(b []byte) error {
	if len(b) == 0 {
		return l.failed(fail(alertUnexpectedMessage, "empty handshake record"))
	}
	l.hand = append(l.hand, b...)
	if l.hand[0] != typeKeyUpdate {
		l.hand = nil
		return l.failed(fail(alertUnexpectedMessage, "post-handshake message other than KeyUpdate"))
	}
	if len(l.hand) < 4 {
		return nil
	}
	if l.hand[1] != 0 || l.hand[2] != 0 || l.hand[3] != 1 {
		l.hand = nil
		return l.failed(fail(alertDecodeError, "malformed KeyUpdate"))
	}
	if len(l.hand) < 5 {
		return nil
	}
	extra, req := len(l.hand) > 5, l.hand[4]
	l.hand = nil
	if extra {
		// A key change must end its record (§5.1).
		return l.failed(fail(alertUnexpectedMessage, "data after KeyUpdate in its record"))
	}
	if req > 1 {
		return l.failed(fail(alertIllegalParameter, "KeyUpdate request is neither 0 nor 1"))
	}
	if err := l.in.update(); err != nil {
		return l.failed(fail(alertInternalError, err.Error()))
	}
	if req == 1 {
		l.updateOut.Store(true)
	}
	return nil
}

// SealedLen returns the most bytes Seal appends for n bytes of plaintext.
func SealedLen(n int) int {
	recs := (n + maxPlaintext - 1) / maxPlaintext
	return n + recs*recordOverhead + keyUpdateLen
}

// Seal appends to dst the records carrying bufs' bytes after the first
// skip of them (those went out in a record completed from an earlier
// Seal). dst must have room for SealedLen of the bytes sealed, so that
// records are sealed where they will be sent, with no copy after
// encryption.
func (l *Layer) Seal(dst []byte, bufs [][]byte, skip int) []byte {
	start := len(dst)
	if l.updateOut.Swap(false) || l.out.seq >= keyUpdateAfter {
		h := len(dst)
		dst = append(dst, recordHeader[:]...)
		dst = append(dst, typeKeyUpdate, 0, 0, 1, 0) // update_not_requested
		dst = l.seal(dst, h, typeHandshake)
		if err := l.out.update(); err != nil {
			// HKDF-Expand with a secret of the hash's size cannot fail.
			panic(err)
		}
	}
	l.plan.pre = len(dst) - start
	l.plan.seq0 = l.out.seq
	l.plan.plain = 0
	bi, bo := 0, 0 // the next byte of bufs: bufs[bi][bo]
	for bi < len(bufs) && skip > 0 {
		if skip >= len(bufs[bi]) {
			skip -= len(bufs[bi])
			bi++
			continue
		}
		bo, skip = skip, 0
	}
	for {
		for bi < len(bufs) && bo == len(bufs[bi]) {
			bi, bo = bi+1, 0
		}
		if bi == len(bufs) {
			return dst
		}
		h := len(dst)
		dst = append(dst, recordHeader[:]...)
		room := maxPlaintext
		for room > 0 && bi < len(bufs) {
			k := min(room, len(bufs[bi])-bo)
			dst = append(dst, bufs[bi][bo:bo+k]...)
			room -= k
			bo += k
			if bo == len(bufs[bi]) {
				bi, bo = bi+1, 0
			}
		}
		l.plan.plain += maxPlaintext - room
		dst = l.seal(dst, h, typeApplicationData)
	}
}

// recordHeader starts every protected record: its outer type and legacy
// version (RFC 8446 §5.2); seal fills in the length.
var recordHeader = [headerLen]byte{typeApplicationData, 3, 3, 0, 0}

// seal protects the record that starts at dst[h] (a header, then the
// plaintext up to the end of dst) as content type typ.
func (l *Layer) seal(dst []byte, h int, typ byte) []byte {
	dst = append(dst, typ)
	n := len(dst) - h - headerLen
	binary.BigEndian.PutUint16(dst[h+3:], uint16(n+tagLen))
	return l.out.aead.Seal(dst[:h+headerLen], l.out.next(), dst[h+headerLen:], dst[h:h+headerLen])
}

// Unsent is told that only w bytes of the last Seal's output reached the
// socket. It returns the plaintext bytes carried by the records that went
// out whole (done); the end of the record in progress, whose bytes from w
// to keep the caller must send before anything else (0 if none); and how
// many plaintext bytes that record carries (owed), which the caller skips
// in its next Seal. Records not begun are forgotten, and their sequence
// numbers used again: their ciphertext never reached the peer.
func (l *Layer) Unsent(w int) (done, keep, owed int) {
	p := l.plan
	started := uint64(0)
	keep = 0
	if w < p.pre {
		keep = p.pre // the KeyUpdate already changed the key: it must go out
	} else {
		off, rem := p.pre, p.plain
		for rem > 0 {
			n := min(rem, maxPlaintext)
			size := n + recordOverhead
			if w >= off+size {
				done += n
				off += size
				rem -= n
				started++
				continue
			}
			if w > off {
				keep, owed = off+size, n
				started++
			}
			break
		}
	}
	l.out.seq = p.seq0 + started
	return done, keep, owed
}

// noAlert in Layer.alert: the peer sent a fatal alert, and nothing is
// sent back.
const noAlert = 1 << 16

// SealAlert appends the alert this side closes with: close_notify, or the
// alert of the failure Open reported; nothing after the peer's fatal
// alert.
func (l *Layer) SealAlert(dst []byte) []byte {
	level, desc := byte(1), byte(alertCloseNotify)
	a := l.alert.Load()
	if a == noAlert {
		return dst
	}
	if a != 0 {
		level, desc = 2, byte(a-1)
	}
	h := len(dst)
	dst = append(dst, recordHeader[:]...)
	dst = append(dst, level, desc)
	return l.seal(dst, h, typeAlert)
}

func getCarry() *[]byte { return bufpool.Get(headerLen + maxCiphertext) }
