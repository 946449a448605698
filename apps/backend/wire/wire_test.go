package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

func roundTrip(t *testing.T, frame []byte) Frame {
	t.Helper()
	r := NewReader(bytes.NewReader(frame), 64, 1<<20)
	f, err := r.Next()
	if err != nil {
		t.Fatalf("%x: %v", frame, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("trailing bytes: %v", err)
	}
	return f
}

// withoutLast drops a frame's last n bytes, as an older sender that did
// not write its last field.
func withoutLast(frame []byte, n int) []byte {
	frame = frame[:len(frame)-n]
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

func TestRoundTrips(t *testing.T) {
	hs := []Header{{"Origin", "https://a.example"}, {"Cookie", "x=1"}}
	cases := []struct {
		frame []byte
		want  Frame
	}{
		{AppendHello(nil, ModeMux, "/chat", "wsgate/1", 1<<20), Frame{Type: TypeHello, Version: 1, Mode: ModeMux, Route: "/chat", Software: "wsgate/1", MaxFrame: 1 << 20}},
		// A HELLO from a gateway older than its max-frame field.
		{withoutLast(AppendHello(nil, ModeMux, "/chat", "wsgate/1", 0), 4), Frame{Type: TypeHello, Version: 1, Mode: ModeMux, Route: "/chat", Software: "wsgate/1"}},
		{AppendHelloReply(nil, 1), Frame{Type: TypeHelloReply, Version: 1}},
		{AppendOpen(nil, &Open{Conn: 7, Path: "/chat", Query: "a=1", Host: "h", Remote: "127.0.0.1:5", TLS: true, Protocols: []string{"v1", "v2"}, Headers: hs}),
			Frame{Type: TypeOpen, Conn: 7, Path: "/chat", Query: "a=1", Host: "h", Remote: "127.0.0.1:5", TLS: true, Protocols: []string{"v1", "v2"}, Headers: hs}},
		{AppendOpen(nil, &Open{Conn: 8, Path: "/chat", Resumed: true, Rooms: []string{"lobby", "ops"}}),
			Frame{Type: TypeOpen, Conn: 8, Path: "/chat", Resumed: true, Rooms: []string{"lobby", "ops"}}},
		{AppendOpen(nil, &Open{Conn: 8, Path: "/chat", Resumed: true}), Frame{Type: TypeOpen, Conn: 8, Path: "/chat", Resumed: true}},
		{AppendEmpty(nil, TypeDrain), Frame{Type: TypeDrain}},
		{AppendEmpty(nil, TypeDrained), Frame{Type: TypeDrained}},
		{AppendMessage(nil, TypeMessage, 9, KindBinary, []byte{0, 1, 255}), Frame{Type: TypeMessage, Conn: 9, Kind: KindBinary, Payload: []byte{0, 1, 255}}},
		{AppendMessage(nil, TypeSend, 9, KindText, nil), Frame{Type: TypeSend, Conn: 9, Kind: KindText, Payload: []byte{}}},
		{AppendClosed(nil, TypeClosed, 3, 1001, "bye"), Frame{Type: TypeClosed, Conn: 3, Code: 1001, Reason: "bye"}},
		{AppendClosed(nil, TypeClose, 3, 4000, ""), Frame{Type: TypeClose, Conn: 3, Code: 4000}},
		{AppendAccept(nil, 4, "v2", hs), Frame{Type: TypeAccept, Conn: 4, Subprotocol: "v2", Headers: hs}},
		{AppendRefuse(nil, 4, 401, "no"), Frame{Type: TypeRefuse, Conn: 4, Status: 401, Reason: "no"}},
		{AppendBroadcast(nil, 2, KindText, []byte("all")), Frame{Type: TypeBroadcast, Except: 2, Kind: KindText, Payload: []byte("all")}},
		{AppendRoom(nil, "lobby", 0, KindBinary, []byte("r")), Frame{Type: TypeRoom, Room: "lobby", Kind: KindBinary, Payload: []byte("r")}},
		{AppendMembership(nil, TypeJoin, 5, "lobby"), Frame{Type: TypeJoin, Conn: 5, Room: "lobby"}},
		{AppendMembership(nil, TypeLeave, 5, "lobby"), Frame{Type: TypeLeave, Conn: 5, Room: "lobby"}},
	}
	for _, tc := range cases {
		got := roundTrip(t, tc.frame)
		if got.Payload != nil && len(got.Payload) == 0 {
			got.Payload = []byte{}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.want.Type, got, tc.want)
		}
	}
}

// TestMessageHeaderSize: a MESSAGE frame is MessageHeaderSize bytes plus
// its payload, which callers that size buffers rely on.
func TestMessageHeaderSize(t *testing.T) {
	if n := len(AppendMessage(nil, TypeSend, 42, KindText, []byte("abc"))); n != MessageHeaderSize+3 {
		t.Fatalf("frame of %d bytes, want %d", n, MessageHeaderSize+3)
	}
}

func TestErrors(t *testing.T) {
	if _, err := NewReader(bytes.NewReader(AppendMessage(nil, TypeSend, 1, KindText, make([]byte, 100))), 64, 50).Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := NewReader(bytes.NewReader([]byte{0, 0, 0, 0}), 64, 50).Next(); err == nil {
		t.Fatal("empty frame accepted")
	}
	truncated := AppendOpen(nil, &Open{Conn: 1, Path: "/x"})
	if _, err := NewReader(bytes.NewReader(truncated[:len(truncated)-3]), 64, 1000).Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	bad := AppendMessage(nil, TypeSend, 1, 9, []byte("x"))
	if _, err := Decode(bad[4:]); err == nil {
		t.Fatal("kind 9 accepted")
	}
	short := AppendClosed(nil, TypeClose, 1, 1000, "")[4:10]
	if _, err := Decode(short); err == nil {
		t.Fatal("short CLOSE accepted")
	}
	if f, err := Decode([]byte{0x7F, 1, 2}); err != nil || f.Type != 0x7F {
		t.Fatalf("unknown type: %v %v", f, err)
	}
}

// TestOversizeSkipped: a frame over the limit is skipped whole, its error
// says what it was about, and the next frame reads as if it had not been
// there; a stream that ends inside the skipped frame is truncated.
func TestOversizeSkipped(t *testing.T) {
	big := make([]byte, 200)
	after := AppendMessage(nil, TypeSend, 9, KindText, []byte("next"))
	cases := []struct {
		frame []byte
		want  OversizeError
	}{
		{AppendMessage(nil, TypeSend, 7, KindBinary, big), OversizeError{Type: TypeSend, Conn: 7}},
		{AppendBroadcast(nil, 3, KindText, big), OversizeError{Type: TypeBroadcast, Conn: 3}},
		{AppendRoom(nil, "lobby", 4, KindText, big), OversizeError{Type: TypeRoom, Room: "lobby", Conn: 4}},
		{AppendAccept(nil, 5, string(big), nil), OversizeError{Type: TypeAccept, Conn: 5}},
	}
	for _, tc := range cases {
		r := NewReader(bytes.NewReader(append(append([]byte(nil), tc.frame...), after...)), 64, 100)
		_, err := r.Next()
		var oe *OversizeError
		if !errors.As(err, &oe) || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%v: %v", tc.want.Type, err)
		}
		tc.want.Size, tc.want.Limit = len(tc.frame)-4, 100
		if *oe != tc.want {
			t.Errorf("got %+v, want %+v", *oe, tc.want)
		}
		if f, err := r.Next(); err != nil || f.Conn != 9 || string(f.Payload) != "next" {
			t.Errorf("%v: the next frame: %+v %v", tc.want.Type, f, err)
		}
		cut := NewReader(bytes.NewReader(tc.frame[:len(tc.frame)-1]), 64, 100)
		if _, err := cut.Next(); err != io.ErrUnexpectedEOF {
			t.Errorf("%v cut short: %v", tc.want.Type, err)
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame := AppendMessage(nil, TypeSend, 12345, KindBinary, make([]byte, 1024))[4:]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode: arbitrary frame bodies never panic, and whatever decodes
// re-encodes to the same bytes (up to fields a later version may append).
func FuzzDecode(f *testing.F) {
	for _, fr := range [][]byte{
		AppendHello(nil, ModeMux, "/r", "s", 1<<16), AppendOpen(nil, &Open{Conn: 1, Path: "/p", Protocols: []string{"a"}, Headers: []Header{{"A", "b"}}}),
		AppendMessage(nil, TypeSend, 1, KindText, []byte("x")), AppendAccept(nil, 2, "p", []Header{{"X", "y"}}), AppendRoom(nil, "r", 0, KindBinary, nil),
	} {
		f.Add(fr[4:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 {
			return
		}
		fr, err := Decode(body)
		if err != nil {
			return
		}
		var again []byte
		switch fr.Type {
		case TypeMessage, TypeSend:
			again = AppendMessage(nil, fr.Type, fr.Conn, fr.Kind, fr.Payload)
		case TypeClosed, TypeClose:
			again = AppendClosed(nil, fr.Type, fr.Conn, fr.Code, fr.Reason)
		case TypeRefuse:
			again = AppendRefuse(nil, fr.Conn, fr.Status, fr.Reason)
		case TypeJoin, TypeLeave:
			again = AppendMembership(nil, fr.Type, fr.Conn, fr.Room)
		case TypeBroadcast:
			again = AppendBroadcast(nil, fr.Except, fr.Kind, fr.Payload)
		case TypeRoom:
			again = AppendRoom(nil, fr.Room, fr.Except, fr.Kind, fr.Payload)
		default:
			return
		}
		// Fields a later version appends are ignored, so what re-encodes is a
		// prefix of the input (all of it for frames ending in a payload).
		if !bytes.HasPrefix(body, again[4:]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", body, again[4:])
		}
	})
}
