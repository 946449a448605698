// Package wire encodes and decodes the producer protocol
// (docs/backend-protocol.md), for the gateway's side and the producer
// SDK alike. Decoding MESSAGE and SEND frames allocates nothing: payloads
// point into the reader's buffer.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Version is the protocol version this package speaks.
const Version = 1

// Type is a frame type.
type Type byte

// Frame types. Gateway-to-producer types have the high bit clear.
const (
	TypeHello   Type = 0x01 // gateway hello
	TypeOpen    Type = 0x02
	TypeMessage Type = 0x03
	TypeClosed  Type = 0x04
	TypeCounted Type = 0x05 // the answer to COUNT
	TypeDrained Type = 0x06 // the answer to DRAIN: nothing more comes on this connection

	TypeHelloReply Type = 0x81 // producer hello
	TypeAccept     Type = 0x82
	TypeRefuse     Type = 0x83
	TypeSend       Type = 0x84
	TypeBroadcast  Type = 0x85
	TypeRoom       Type = 0x86
	TypeJoin       Type = 0x87
	TypeLeave      Type = 0x88
	TypeClose      Type = 0x89
	TypeCount      Type = 0x8A // how many clients in a room, cluster-wide
	TypeDrain      Type = 0x8B // this producer instance is going away: move its clients
)

var typeNames = map[Type]string{TypeHello: "HELLO", TypeOpen: "OPEN", TypeMessage: "MESSAGE", TypeClosed: "CLOSED",
	TypeHelloReply: "HELLO(reply)", TypeAccept: "ACCEPT", TypeRefuse: "REFUSE", TypeSend: "SEND",
	TypeBroadcast: "BROADCAST", TypeRoom: "ROOM", TypeJoin: "JOIN", TypeLeave: "LEAVE", TypeClose: "CLOSE",
	TypeCount: "COUNT", TypeCounted: "COUNTED", TypeDrain: "DRAIN", TypeDrained: "DRAINED"}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// Modes announced in HELLO.
const (
	ModePerClient uint8 = 0
	ModeMux       uint8 = 1
)

// Message kinds.
const (
	KindText   uint8 = 1
	KindBinary uint8 = 2
)

// Header is one forwarded request header or one response header.
type Header struct{ Name, Value string }

// Frame is one decoded frame; which fields are set depends on Type.
// Payload points into the reader's buffer and is valid until the next
// call to Reader.Next.
type Frame struct {
	Type Type
	Conn uint64

	// HELLO (both directions)
	Version  uint16
	Mode     uint8
	Route    string
	Software string
	// MaxFrame is the largest frame (its length field) the gateway takes
	// from the producer, from its HELLO; 0 when it did not say (a gateway
	// older than the field). A producer's SDK refuses to write a larger
	// one: the gateway would skip it and close the client with 1009.
	MaxFrame uint32

	// OPEN
	Path, Query, Host, Remote string
	TLS                       bool
	Protocols                 []string
	Headers                   []Header // OPEN: forwarded; ACCEPT: to add to the 101
	// Resumed marks an OPEN that re-announces a client the gateway held
	// while its producer restarted (or moved from a draining instance);
	// Rooms are the rooms it is in. The client's handshake is long done:
	// an ACCEPT's subprotocol and headers are ignored.
	Resumed bool
	Rooms   []string

	// MESSAGE, SEND, BROADCAST, ROOM
	Kind    uint8
	Payload []byte

	// CLOSED, CLOSE
	Code   uint16
	Reason string // also REFUSE

	Subprotocol string // ACCEPT
	Status      uint16 // REFUSE
	Except      uint64 // BROADCAST, ROOM
	Room        string // ROOM, JOIN, LEAVE, COUNT, COUNTED

	// COUNT, COUNTED: the producer's request id, and the answer: how many
	// clients, and how many gateway processes counted them.
	ID    uint32
	Count uint64
	Nodes uint16
}

// ErrTooLarge is returned for a frame over the reader's limit (as an
// *OversizeError, which the stream survives), and by the SDKs for a send
// that would make one.
var ErrTooLarge = errors.New("wire: frame over the size limit")

// OversizeError is a frame over the reader's limit, which Next skipped:
// the stream is still in step, and the next call reads the next frame.
// Type and, where the frame has them before its payload, Conn and Room
// say what it was about, so that a receiver can answer for that one
// client (the gateway closes it with 1009) instead of for the stream.
type OversizeError struct {
	Type  Type
	Conn  uint64 // SEND, CLOSE, ACCEPT, REFUSE, JOIN, LEAVE; BROADCAST and ROOM: except
	Room  string // ROOM
	Size  int    // the frame's length field
	Limit int
}

func (e *OversizeError) Error() string {
	return fmt.Sprintf("wire: %v frame of %d bytes over the size limit of %d", e.Type, e.Size, e.Limit)
}

func (e *OversizeError) Unwrap() error { return ErrTooLarge }

// oversizeHead is how much of an oversize frame Next reads to say what it
// is about: the type, a room name of up to 65535 bytes and a conn id.
const oversizeHead = 1 + 2 + 0xFFFF + 8

// Reader reads frames from a stream.
type Reader struct {
	br  *bufio.Reader
	buf []byte
	max int
}

// NewReader reads frames of at most max bytes (length field included in
// nothing: max bounds type plus body) through a buffer of bufSize bytes.
func NewReader(r io.Reader, bufSize, max int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), max: max}
}

// Next reads and decodes the next frame. The frame's Payload is valid
// until the next call.
func (r *Reader) Next() (Frame, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r.br, lb[:]); err != nil {
		return Frame{}, err
	}
	n := int(binary.BigEndian.Uint32(lb[:]))
	if n < 1 {
		return Frame{}, errors.New("wire: empty frame")
	}
	if n > r.max {
		return Frame{}, r.skip(n)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	f, err := Decode(b)
	// A buffer grown for one large frame is not kept for the rest of the
	// connection's life.
	if cap(r.buf) > 1<<20 && n <= 1<<16 {
		r.buf = nil
	}
	return f, err
}

// skip reads past an oversize frame of n bytes, keeping only enough of its
// head to say what it was about, and returns the *OversizeError, or the
// stream's error if it ends first.
func (r *Reader) skip(n int) error {
	head := make([]byte, min(n, oversizeHead))
	if _, err := io.ReadFull(r.br, head); err != nil {
		return noEOF(err)
	}
	if _, err := io.CopyN(io.Discard, r.br, int64(n-len(head))); err != nil {
		return noEOF(err)
	}
	e := &OversizeError{Type: Type(head[0]), Size: n, Limit: r.max}
	d := decoder{b: head[1:]}
	switch e.Type {
	case TypeRoom:
		e.Room = d.str()
		e.Conn = d.u64()
	default:
		e.Conn = d.u64()
	}
	return e
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Release drops the reader's frame buffer after a large frame, so an idle
// connection does not keep it. The last frame's Payload becomes invalid.
func (r *Reader) Release() {
	if cap(r.buf) > 64<<10 {
		r.buf = nil
	}
}

// Decode decodes one frame body (type byte first).
func Decode(b []byte) (Frame, error) {
	d := decoder{b: b[1:]}
	f := Frame{Type: Type(b[0])}
	switch f.Type {
	case TypeHello:
		f.Version, f.Mode, f.Route, f.Software = d.u16(), d.u8(), d.str(), d.str()
		if len(d.b) >= 4 {
			f.MaxFrame = d.u32()
		}
	case TypeHelloReply:
		f.Version = d.u16()
	case TypeOpen:
		f.Conn, f.Path, f.Query, f.Host, f.Remote = d.u64(), d.str(), d.str(), d.str(), d.str()
		flags := d.u8()
		f.TLS, f.Resumed = flags&flagTLS != 0, flags&flagResumed != 0
		f.Protocols = d.strs(int(d.u8()))
		f.Headers = d.headers()
		if f.Resumed && len(d.b) >= 2 {
			f.Rooms = d.strs(int(d.u16()))
		}
	case TypeMessage, TypeSend:
		f.Conn, f.Kind, f.Payload = d.u64(), d.u8(), d.rest()
	case TypeClosed, TypeClose:
		f.Conn, f.Code, f.Reason = d.u64(), d.u16(), d.str()
	case TypeAccept:
		f.Conn, f.Subprotocol = d.u64(), d.str()
		f.Headers = d.headers()
	case TypeRefuse:
		f.Conn, f.Status, f.Reason = d.u64(), d.u16(), d.str()
	case TypeBroadcast:
		f.Except, f.Kind, f.Payload = d.u64(), d.u8(), d.rest()
	case TypeRoom:
		f.Room, f.Except, f.Kind, f.Payload = d.str(), d.u64(), d.u8(), d.rest()
	case TypeJoin, TypeLeave:
		f.Conn, f.Room = d.u64(), d.str()
	case TypeCount:
		f.ID, f.Room = d.u32(), d.str()
	case TypeCounted:
		f.ID, f.Room, f.Count, f.Nodes = d.u32(), d.str(), d.u64(), d.u16()
	default:
		return f, nil // unknown types are ignored by the caller
	}
	if d.err != nil {
		return f, fmt.Errorf("wire: malformed %v frame: %w", f.Type, d.err)
	}
	if (f.Kind != 0 || f.Type == TypeMessage || f.Type == TypeSend || f.Type == TypeBroadcast || f.Type == TypeRoom) && f.Kind != KindText && f.Kind != KindBinary {
		return f, fmt.Errorf("wire: %v frame with message kind %d", f.Type, f.Kind)
	}
	return f, nil
}

var errShort = errors.New("frame too short")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < n {
		d.err = errShort
		return false
	}
	return true
}

func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := int(d.u16())
	if !d.need(n) {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// strs reads n strings.
func (d *decoder) strs(n int) []string {
	if n == 0 || d.err != nil {
		return nil
	}
	out := make([]string, 0, min(n, len(d.b)/2))
	for range n {
		out = append(out, d.str())
		if d.err != nil {
			return nil
		}
	}
	return out
}

func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	p := d.b
	d.b = nil
	return p
}

func (d *decoder) headers() []Header {
	n := int(d.u16())
	if n == 0 || d.err != nil {
		return nil
	}
	hs := make([]Header, 0, min(n, len(d.b)/4))
	for range n {
		hs = append(hs, Header{Name: d.str(), Value: d.str()})
		if d.err != nil {
			return nil
		}
	}
	return hs
}

// Encoding. Each Append function appends one complete frame (length
// prefix included) to dst. Strings longer than 65535 bytes are cut.

func begin(dst []byte, t Type) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(t))
	return dst, start
}

func end(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

func putStr(dst []byte, s string) []byte {
	if len(s) > 0xFFFF {
		s = s[:0xFFFF]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func putHeaders(dst []byte, hs []Header) []byte {
	n := min(len(hs), 0xFFFF)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, h := range hs[:n] {
		dst = putStr(putStr(dst, h.Name), h.Value)
	}
	return dst
}

// AppendHello appends the gateway's HELLO, with the largest frame it
// takes from the producer (a field added at the end: a producer that
// predates it ignores it).
func AppendHello(dst []byte, mode uint8, route, software string, maxFrame uint32) []byte {
	dst, s := begin(dst, TypeHello)
	dst = binary.BigEndian.AppendUint16(dst, Version)
	dst = append(dst, mode)
	dst = putStr(putStr(dst, route), software)
	return end(binary.BigEndian.AppendUint32(dst, maxFrame), s)
}

// AppendHelloReply appends the producer's HELLO.
func AppendHelloReply(dst []byte, version uint16) []byte {
	dst, s := begin(dst, TypeHelloReply)
	return end(binary.BigEndian.AppendUint16(dst, version), s)
}

// Open is the body of an OPEN frame.
type Open struct {
	Conn                      uint64
	Path, Query, Host, Remote string
	TLS                       bool
	Protocols                 []string
	Headers                   []Header
	// Resumed and Rooms re-announce a held client (see Frame).
	Resumed bool
	Rooms   []string
}

// OPEN's flags.
const (
	flagTLS     = 1 << 0
	flagResumed = 1 << 1
)

// AppendOpen appends an OPEN frame.
func AppendOpen(dst []byte, o *Open) []byte {
	dst, s := begin(dst, TypeOpen)
	dst = binary.BigEndian.AppendUint64(dst, o.Conn)
	dst = putStr(putStr(putStr(putStr(dst, o.Path), o.Query), o.Host), o.Remote)
	var flags byte
	if o.TLS {
		flags |= flagTLS
	}
	if o.Resumed {
		flags |= flagResumed
	}
	dst = append(dst, flags)
	n := min(len(o.Protocols), 0xFF)
	dst = append(dst, byte(n))
	for _, p := range o.Protocols[:n] {
		dst = putStr(dst, p)
	}
	dst = putHeaders(dst, o.Headers)
	if o.Resumed {
		// A field added at the end: a producer that predates it reads a
		// resumed client as a new one, which is what it would have been.
		n := min(len(o.Rooms), 0xFFFF)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
		for _, r := range o.Rooms[:n] {
			dst = putStr(dst, r)
		}
	}
	return end(dst, s)
}

// AppendEmpty appends a frame with no body: DRAIN (producer) or DRAINED
// (gateway).
func AppendEmpty(dst []byte, t Type) []byte {
	dst, s := begin(dst, t)
	return end(dst, s)
}

// AppendMessage appends a MESSAGE (gateway) or SEND (producer) frame:
// t is TypeMessage or TypeSend.
func AppendMessage(dst []byte, t Type, conn uint64, kind uint8, payload []byte) []byte {
	dst, s := begin(dst, t)
	dst = binary.BigEndian.AppendUint64(dst, conn)
	dst = append(dst, kind)
	return end(append(dst, payload...), s)
}

// MessageHeaderSize is the size of a MESSAGE or SEND frame without its
// payload, for callers that write the payload separately.
const MessageHeaderSize = 4 + 1 + 8 + 1

// MessageConn returns the connection of a buffer that holds exactly one
// MESSAGE frame, as AppendMessage made it, and false for anything else.
func MessageConn(b []byte) (uint64, bool) {
	if len(b) < MessageHeaderSize || Type(b[4]) != TypeMessage || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[5:]), true
}

// AppendClosed appends a CLOSED (gateway) or CLOSE (producer) frame.
func AppendClosed(dst []byte, t Type, conn uint64, code uint16, reason string) []byte {
	dst, s := begin(dst, t)
	dst = binary.BigEndian.AppendUint64(dst, conn)
	dst = binary.BigEndian.AppendUint16(dst, code)
	return end(putStr(dst, reason), s)
}

// AppendAccept appends an ACCEPT frame.
func AppendAccept(dst []byte, conn uint64, subprotocol string, headers []Header) []byte {
	dst, s := begin(dst, TypeAccept)
	dst = binary.BigEndian.AppendUint64(dst, conn)
	return end(putHeaders(putStr(dst, subprotocol), headers), s)
}

// AppendRefuse appends a REFUSE frame.
func AppendRefuse(dst []byte, conn uint64, status uint16, reason string) []byte {
	dst, s := begin(dst, TypeRefuse)
	dst = binary.BigEndian.AppendUint64(dst, conn)
	dst = binary.BigEndian.AppendUint16(dst, status)
	return end(putStr(dst, reason), s)
}

// AppendBroadcast appends a BROADCAST frame.
func AppendBroadcast(dst []byte, except uint64, kind uint8, payload []byte) []byte {
	dst, s := begin(dst, TypeBroadcast)
	dst = binary.BigEndian.AppendUint64(dst, except)
	dst = append(dst, kind)
	return end(append(dst, payload...), s)
}

// AppendRoom appends a ROOM frame.
func AppendRoom(dst []byte, room string, except uint64, kind uint8, payload []byte) []byte {
	dst, s := begin(dst, TypeRoom)
	dst = putStr(dst, room)
	dst = binary.BigEndian.AppendUint64(dst, except)
	dst = append(dst, kind)
	return end(append(dst, payload...), s)
}

// AppendMembership appends a JOIN or LEAVE frame.
func AppendMembership(dst []byte, t Type, conn uint64, room string) []byte {
	dst, s := begin(dst, t)
	dst = binary.BigEndian.AppendUint64(dst, conn)
	return end(putStr(dst, room), s)
}

// AppendCount appends a COUNT frame: the producer asks how many clients
// are in room ("" for the whole route) on every gateway process of the
// cluster.
func AppendCount(dst []byte, id uint32, room string) []byte {
	dst, s := begin(dst, TypeCount)
	dst = binary.BigEndian.AppendUint32(dst, id)
	return end(putStr(dst, room), s)
}

// AppendCounted appends the gateway's answer to COUNT.
func AppendCounted(dst []byte, id uint32, room string, count uint64, nodes uint16) []byte {
	dst, s := begin(dst, TypeCounted)
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = putStr(dst, room)
	dst = binary.BigEndian.AppendUint64(dst, count)
	return end(binary.BigEndian.AppendUint16(dst, nodes), s)
}
