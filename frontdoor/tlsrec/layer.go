package tlsrec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
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
	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23
	typeKeyUpdate        = 24 // handshake message type (§4)
)

// Alert descriptions (RFC 8446 §6).
const (
	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertIllegalParameter  = 47
	alertDecodeError       = 50
	alertProtocolVersion   = 70
	alertInternalError     = 80
	alertUserCanceled      = 90
)

// Limits crypto/tls holds a peer to, held here to the same values so that
// a taken-over connection refuses what crypto/tls would have refused.
const (
	// maxUselessRecords is how many records in a row may advance nothing
	// (crypto/tls's maxUselessRecords): empty application data,
	// user_canceled alerts, post-handshake messages. One record with
	// application data starts the count again, so a peer that updates its
	// key before every message (GnuTLS's and OpenSSL's rekey commands) is
	// never near it; a flood of KeyUpdates, each costing a key schedule
	// step, is cut at the 17th.
	maxUselessRecords = 16
	// maxHandshake is the longest handshake message crypto/tls reads
	// (its maxHandshake); a longer one is refused with internal_error, as
	// crypto/tls does, before its bytes arrive.
	maxHandshake = 65536
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

// ErrTruncated is what Open's caller reports when the stream ends in the
// middle of a record (see Pending): crypto/tls's io.ErrUnexpectedEOF.
var ErrTruncated = io.ErrUnexpectedEOF

// Layer is a TLS 1.3 connection's record layer after the handshake.
//
// Invariants: Open and Compact are called by one goroutine at a time (the
// reader); Seal, Unsent and SealAlert by one goroutine at a time (the
// writer). The two sides share only updateOut and alert, which are atomic:
// the reader learns that the peer asked for a KeyUpdate, and the writer
// sends it before its next record, as §4.6.3 requires. Once Open has
// returned an error (io.EOF for close_notify included) it returns that
// error again and opens nothing more, as crypto/tls's read side does.
//
// A record that arrives in parts costs what it holds: its header waits in
// hdr, inside the Layer, and its body in a buffer of the announced length
// (carry), which Compact shrinks to the bytes received when the
// connection parks.
type Layer struct {
	in  direction
	out direction

	hdr   [headerLen]byte // the header of a record not yet complete
	hn    int             // bytes of hdr received; headerLen once carry holds the record
	carry *[]byte         // the record so far, header included, once its body has begun
	hand  []byte          // a handshake message split across records

	useless int   // records in a row that advanced nothing (maxUselessRecords)
	err     error // sticky: what Open returned last, once it failed

	updateOut atomic.Bool   // send a KeyUpdate before the next record
	alert     atomic.Uint32 // 1+alert to close with, set by the reader on failure; 0: close_notify

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
// inSeq and outSeq. The layer keeps its own copies of the secrets.
func NewLayer(id uint16, in, out []byte, inSeq, outSeq uint64) (*Layer, error) {
	s := suiteByID(id)
	if s == nil {
		return nil, fmt.Errorf("tlsrec: cipher suite %#04x is not a TLS 1.3 suite", id)
	}
	l := &Layer{}
	if err := l.in.set(s, bytes.Clone(in)); err != nil {
		return nil, err
	}
	if err := l.out.set(s, bytes.Clone(out)); err != nil {
		return nil, err
	}
	l.in.seq, l.out.seq = inSeq, outSeq
	return l, nil
}

// Pending reports whether the layer holds part of a record it has not
// been able to open yet: a stream that ends now is truncated.
func (l *Layer) Pending() bool { return l.hn > 0 && l.err == nil }

// Open decrypts the records in p (bytes as read from the socket; they may
// end in the middle of a record, which is kept for the next call) and
// writes their application data to w: once per call, in place in p, which
// it overwrites. It returns io.EOF once the peer's close_notify is read,
// and an *AlertError when the peer's records are not valid; the alert to
// send is then remembered for SealAlert. Either is returned again by
// every later call.
func (l *Layer) Open(p []byte, w io.Writer) error {
	if l.err != nil {
		return l.err
	}
	if err := l.open(p, w); err != nil {
		l.err = err
		l.dropCarry()
		l.hand = nil
		return err
	}
	return nil
}

func (l *Layer) open(p []byte, w io.Writer) error {
	if l.hn > 0 {
		var err error
		if p, err = l.openCarried(p, w); err != nil || p == nil {
			return err
		}
	}
	out, off := 0, 0
	var err error
	for len(p)-off >= headerLen {
		var n int
		if n, err = l.header(p[off : off+headerLen]); err != nil {
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
		l.keep(p[off:])
	}
	if out > 0 {
		if _, werr := w.Write(p[:out]); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// header checks a record's header as crypto/tls does before reading its
// body (RFC 8446 §5.1, §5.2) and returns the body's length.
func (l *Layer) header(h []byte) (int, error) {
	if h[1] != 3 || h[2] != 3 {
		return 0, l.failed(fail(alertProtocolVersion, "record version is not TLS 1.2's"))
	}
	n := int(binary.BigEndian.Uint16(h[3:]))
	if n > maxCiphertext {
		return 0, l.failed(fail(alertRecordOverflow, "record too long"))
	}
	return n, nil
}

// keep holds the start of a record (less than a whole one): its header in
// hdr, and once its body has begun, a buffer for the announced length.
func (l *Layer) keep(p []byte) {
	k := copy(l.hdr[l.hn:], p)
	l.hn += k
	p = p[k:]
	if len(p) == 0 {
		return
	}
	// hdr is whole and was checked by the caller.
	n := int(binary.BigEndian.Uint16(l.hdr[3:]))
	c := getRecord(headerLen + n)
	*c = append(*c, l.hdr[:]...)
	*c = append(*c, p...)
	l.carry = c
}

// openCarried completes the carried record from p and opens it. It
// returns the rest of p, or nil if p did not complete it.
func (l *Layer) openCarried(p []byte, w io.Writer) ([]byte, error) {
	if l.hn < headerLen {
		k := copy(l.hdr[l.hn:], p)
		l.hn += k
		p = p[k:]
		if l.hn < headerLen {
			return nil, nil
		}
		if _, err := l.header(l.hdr[:]); err != nil {
			return nil, err
		}
	}
	n := int(binary.BigEndian.Uint16(l.hdr[3:]))
	if l.carry == nil {
		if len(p) >= n {
			// The body is all in p: opened where it is, once the header is
			// in front of it.
			rec := getRecord(headerLen + n)
			*rec = append(append(*rec, l.hdr[:]...), p[:n]...)
			l.hn = 0
			err := l.openOne(*rec, w)
			putRecord(rec)
			if err != nil {
				return nil, err
			}
			return p[n:], nil
		}
		if len(p) == 0 {
			return nil, nil
		}
		c := getRecord(headerLen + n)
		*c = append(append(*c, l.hdr[:]...), p...)
		l.carry = c
		return nil, nil
	}
	c := l.carry
	if cap(*c) < headerLen+n {
		// Compacted while parked: back to a buffer for the whole record.
		g := getRecord(headerLen + n)
		*g = append(*g, *c...)
		putRecord(c)
		c, l.carry = g, g
	}
	k := min(headerLen+n-len(*c), len(p))
	*c = append(*c, p[:k]...)
	p = p[k:]
	if len(*c) < headerLen+n {
		return nil, nil
	}
	err := l.openOne(*c, w)
	l.dropCarry()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// openOne opens one whole record and writes its data to w.
func (l *Layer) openOne(rec []byte, w io.Writer) error {
	data, err := l.openRecord(rec)
	if len(data) > 0 {
		if _, werr := w.Write(data); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// Held is the memory a partial record holds: its buffer's capacity (0
// while only its header has arrived, which waits inside the Layer).
func (l *Layer) Held() int {
	if l.carry == nil {
		return 0
	}
	return cap(*l.carry)
}

// Compact releases the buffer of a partial record down to the bytes it
// holds: the reader calls it as the connection parks, so that a client
// that sent part of a record and went quiet costs what it sent, not a
// record's worth.
func (l *Layer) Compact() {
	if c := l.carry; c != nil && cap(*c) > len(*c) {
		b := make([]byte, len(*c))
		copy(b, *c)
		putRecord(c)
		l.carry = &b
	}
}

func (l *Layer) dropCarry() {
	putRecord(l.carry)
	l.carry = nil
	l.hn = 0
}

// failed remembers a local failure's alert for SealAlert.
func (l *Layer) failed(err error) error {
	var ae *AlertError
	if errors.As(err, &ae) && !ae.Remote {
		l.alert.CompareAndSwap(0, 1+uint32(ae.Alert))
	}
	return err
}

// advanced counts a record that carried no application data; the
// maxUselessRecords+1st in a row ends the connection, as in crypto/tls.
func (l *Layer) uselessRecord() error {
	l.useless++
	if l.useless > maxUselessRecords {
		return l.failed(fail(alertUnexpectedMessage, "too many records without application data"))
	}
	return nil
}

// openRecord opens one whole record in place and returns its application
// data, if any (RFC 8446 §5.2, §5.4).
func (l *Layer) openRecord(rec []byte) ([]byte, error) {
	if rec[0] == typeChangeCipherSpec {
		// A change_cipher_spec after the peer's Finished is an unexpected
		// record (RFC 8446 §5), which crypto/tls drops instead (see the
		// differences in diff_test.go).
		return nil, l.failed(fail(alertUnexpectedMessage, "change_cipher_spec after the handshake"))
	}
	pt, ok := l.in.open(rec)
	if !ok {
		return nil, l.failed(fail(alertBadRecordMAC, "record does not authenticate"))
	}
	if rec[0] != typeApplicationData {
		// After the handshake every record is protected, and so has this
		// outer type (§5.1). Checked once the record authenticates, as
		// crypto/tls does: anything else is a bad record first.
		return nil, l.failed(fail(alertUnexpectedMessage, "protected record of another outer type"))
	}
	// The limit is on TLSInnerPlaintext, padding included (§5.4): checked
	// before the padding is stripped, as crypto/tls does.
	if len(pt) > maxPlaintext+1 {
		return nil, l.failed(fail(alertRecordOverflow, "plaintext too long"))
	}
	typ, pt, ok := innerType(pt)
	if !ok {
		// No non-zero octet (a record of padding, or of the tag alone):
		// §5.4 says unexpected_message.
		return nil, l.failed(fail(alertUnexpectedMessage, "record without a content type"))
	}
	if len(l.hand) > 0 && typ != typeHandshake {
		return nil, l.failed(fail(alertUnexpectedMessage, "handshake message interrupted"))
	}
	switch typ {
	case typeApplicationData:
		if len(pt) == 0 {
			return nil, l.uselessRecord()
		}
		l.useless = 0
		return pt, nil
	case typeAlert:
		// Alerts are never fragmented or coalesced (§5.1); crypto/tls
		// answers any other length with unexpected_message.
		if len(pt) != 2 {
			return nil, l.failed(fail(alertUnexpectedMessage, "malformed alert"))
		}
		switch pt[1] {
		case alertCloseNotify:
			return nil, io.EOF
		case alertUserCanceled:
			return nil, l.uselessRecord() // a warning; close_notify follows (§6.1)
		}
		// A fatal alert ends the connection (§6.2); the close that follows
		// sends close_notify, as crypto/tls's Close does.
		return nil, &AlertError{Alert: pt[1], Remote: true}
	case typeHandshake:
		if len(pt) == 0 {
			return nil, l.failed(fail(alertUnexpectedMessage, "empty handshake record"))
		}
		l.hand = append(l.hand, pt...)
		return nil, l.handshake()
	}
	return nil, l.failed(fail(alertUnexpectedMessage, "unknown content type"))
}

// handshake handles the post-handshake messages complete in l.hand, in
// the order crypto/tls checks them. Of those, a server only accepts
// KeyUpdate (§4.6): it never asks for a certificate after the handshake,
// and a client does not send tickets.
func (l *Layer) handshake() error {
	for len(l.hand) >= 4 {
		n := int(l.hand[1])<<16 | int(l.hand[2])<<8 | int(l.hand[3])
		if n > maxHandshake {
			return l.failed(fail(alertInternalError, "handshake message too long"))
		}
		if len(l.hand) < 4+n {
			return nil
		}
		msg := l.hand[:4+n]
		l.hand = l.hand[4+n:]
		if msg[0] != typeKeyUpdate {
			return l.failed(fail(alertUnexpectedMessage, "post-handshake message other than KeyUpdate"))
		}
		if n != 1 || msg[4] > 1 {
			return l.failed(fail(alertDecodeError, "malformed KeyUpdate"))
		}
		if err := l.uselessRecord(); err != nil {
			return err
		}
		if len(l.hand) > 0 {
			// A key change must end its record (§5.1).
			return l.failed(fail(alertUnexpectedMessage, "data after KeyUpdate in its record"))
		}
		l.hand = nil
		if err := l.in.update(); err != nil {
			return l.failed(fail(alertInternalError, err.Error()))
		}
		if msg[4] == 1 {
			l.updateOut.Store(true)
		}
	}
	if len(l.hand) == 0 {
		l.hand = nil
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

// SealAlert appends the alert this side closes with: close_notify, or
// the alert of the failure Open reported.
func (l *Layer) SealAlert(dst []byte) []byte {
	level, desc := byte(1), byte(alertCloseNotify)
	if a := l.alert.Load(); a != 0 {
		level, desc = 2, byte(a-1)
	}
	h := len(dst)
	dst = append(dst, recordHeader[:]...)
	dst = append(dst, level, desc)
	return l.seal(dst, h, typeAlert)
}

// fullRecord is the size of the largest record, header included. Records
// of that size come from a pool of their own: bufpool's class for them
// would be 32 KiB, twice what they hold.
const fullRecord = headerLen + maxCiphertext

var fullRecords = sync.Pool{New: func() any { b := make([]byte, 0, fullRecord); return &b }}

// getRecord returns an empty buffer for a record of n bytes.
func getRecord(n int) *[]byte {
	if n > 8<<10 {
		b := fullRecords.Get().(*[]byte)
		*b = (*b)[:0]
		return b
	}
	return bufpool.Get(n)
}

func putRecord(b *[]byte) {
	if b == nil {
		return
	}
	if cap(*b) == fullRecord {
		fullRecords.Put(b)
		return
	}
	bufpool.Put(b)
}
