package tlsrec

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// pairLayers returns two layers that talk to each other: a's records open
// in b and b's in a.
func pairLayers(t testing.TB, id uint16) (a, b *Layer) {
	t.Helper()
	n := suiteByID(id).hash().Size()
	s1, s2 := bytes.Repeat([]byte{1}, n), bytes.Repeat([]byte{2}, n)
	a, err := NewLayer(id, s1, s2, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err = NewLayer(id, s2, s1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

type sink struct {
	bytes.Buffer
	writes int
}

func (s *sink) Write(p []byte) (int, error) { s.writes++; return s.Buffer.Write(p) }

// TestOpenSplits feeds a stream of records of several sizes to Open cut
// at every place (one cut), and at every byte (one call per byte): the
// plaintext comes out whole and in order, and nothing stays pending.
func TestOpenSplits(t *testing.T) {
	for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		a, _ := pairLayers(t, id)
		msgs := [][]byte{pattern(1, 1), pattern(0, 0), pattern(300, 2), pattern(maxPlaintext+5, 3)}
		var wire, want []byte
		for _, m := range msgs {
			wire = a.Seal(wire, [][]byte{m}, 0)
			want = append(want, m...)
		}
		for cut := 0; cut <= len(wire); cut += 1 + cut/64 {
			_, b := pairLayers(t, id)
			var got sink
			in := append([]byte(nil), wire...)
			if err := b.Open(in[:cut], &got); err != nil {
				t.Fatalf("%#x cut %d: %v", id, cut, err)
			}
			if err := b.Open(in[cut:], &got); err != nil {
				t.Fatalf("%#x cut %d: %v", id, cut, err)
			}
			if !bytes.Equal(got.Bytes(), want) || b.Pending() {
				t.Fatalf("%#x cut %d: %d bytes, pending %v", id, cut, got.Len(), b.Pending())
			}
		}
		_, b := pairLayers(t, id)
		var got sink
		in := append([]byte(nil), wire...)
		for i := range in {
			if err := b.Open(in[i:i+1], &got); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%#x byte by byte: %d bytes", id, got.Len())
		}
	}
}

// inner seals one record of content type typ holding p, as a peer would.
func inner(l *Layer, typ byte, p []byte) []byte {
	rec := append([]byte(nil), recordHeader[:]...)
	rec = append(rec, p...)
	return l.seal(rec, 0, typ)
}

// TestOpenRejects: records a server must refuse get the alert RFC 8446
// names, remembered for the closing alert; close_notify and user_canceled
// end or do not end the stream.
func TestOpenRejects(t *testing.T) {
	id := uint16(tls.TLS_AES_128_GCM_SHA256)
	cases := []struct {
		name  string
		wire  func(a *Layer) []byte
		err   error // io.EOF, nil, or an *AlertError with this alert
		alert uint8
		data  string // application data delivered before the error
	}{
		{name: "close_notify", wire: func(a *Layer) []byte {
			return append(inner(a, typeApplicationData, []byte("bye")), inner(a, typeAlert, []byte{1, 0})...)
		}, err: io.EOF, data: "bye"},
		{name: "user_canceled is a warning", wire: func(a *Layer) []byte {
			return append(inner(a, typeAlert, []byte{1, alertUserCanceled}), inner(a, typeApplicationData, []byte("x"))...)
		}, data: "x"},
		{name: "peer's fatal alert", wire: func(a *Layer) []byte { return inner(a, typeAlert, []byte{2, 40}) }, alert: 40},
		{name: "tampered record", wire: func(a *Layer) []byte {
			r := inner(a, typeApplicationData, []byte("hello"))
			r[7] ^= 1
			return r
		}, alert: alertBadRecordMAC},
		{name: "record replayed", wire: func(a *Layer) []byte {
			r := inner(a, typeApplicationData, []byte("once"))
			return append(r, r...)
		}, alert: alertBadRecordMAC, data: "once"},
		{name: "record too long", wire: func(a *Layer) []byte { return []byte{23, 3, 3, 0x41, 0x01} }, alert: alertRecordOverflow},
		{name: "plaintext too long", wire: func(a *Layer) []byte {
			return inner(a, typeApplicationData, make([]byte, maxPlaintext+1))
		}, alert: alertRecordOverflow},
		{name: "shorter than a tag", wire: func(a *Layer) []byte { return []byte{23, 3, 3, 0, 3, 1, 2, 3} }, alert: alertBadRecordMAC},
		{name: "change_cipher_spec after the handshake", wire: func(a *Layer) []byte { return []byte{20, 3, 3, 0, 1, 1} }, alert: alertUnexpectedMessage},
		{name: "only padding", wire: func(a *Layer) []byte {
			r := append([]byte(nil), recordHeader[:]...)
			r = append(r, 0, 0, 0)
			r[4] = 3 + tagLen
			return a.out.aead.Seal(r[:5], a.out.next(), r[5:], r[:5])
		}, alert: alertUnexpectedMessage},
		{name: "unknown content type", wire: func(a *Layer) []byte { return inner(a, 99, []byte("x")) }, alert: alertUnexpectedMessage},
		{name: "alert of three bytes", wire: func(a *Layer) []byte { return inner(a, typeAlert, []byte{1, 0, 0}) }, alert: alertUnexpectedMessage},
		{name: "alert of one byte", wire: func(a *Layer) []byte { return inner(a, typeAlert, []byte{1}) }, alert: alertUnexpectedMessage},
		{name: "NewSessionTicket from a client", wire: func(a *Layer) []byte { return inner(a, typeHandshake, []byte{4, 0, 0, 0}) }, alert: alertUnexpectedMessage},
		{name: "empty handshake record", wire: func(a *Layer) []byte { return inner(a, typeHandshake, nil) }, alert: alertUnexpectedMessage},
		{name: "KeyUpdate with a bad length", wire: func(a *Layer) []byte { return inner(a, typeHandshake, []byte{24, 0, 0, 2, 0, 0}) }, alert: alertDecodeError},
		{name: "KeyUpdate request 2", wire: func(a *Layer) []byte { return inner(a, typeHandshake, []byte{24, 0, 0, 1, 2}) }, alert: alertDecodeError},
		{name: "handshake message longer than crypto/tls reads", wire: func(a *Layer) []byte { return inner(a, typeHandshake, []byte{24, 1, 0, 1}) }, alert: alertInternalError},
		{name: "KeyUpdate announced longer, then data", wire: func(a *Layer) []byte {
			return append(inner(a, typeHandshake, []byte{24, 0, 0, 2, 0}), inner(a, typeApplicationData, []byte("x"))...)
		}, alert: alertUnexpectedMessage},
		{name: "record version other than 0x0303", wire: func(a *Layer) []byte {
			r := inner(a, typeApplicationData, []byte("x"))
			r[2] = 4
			return r
		}, alert: alertProtocolVersion},
		{name: "tag only", wire: func(a *Layer) []byte {
			r := append([]byte(nil), recordHeader[:]...)
			r[4] = tagLen
			return a.out.aead.Seal(r[:5], a.out.next(), nil, r[:5])
		}, alert: alertUnexpectedMessage},
		{name: "full record with padding past the limit", wire: func(a *Layer) []byte {
			r := append([]byte(nil), recordHeader[:]...)
			r = append(r, make([]byte, maxPlaintext)...)
			r = append(r, typeApplicationData)
			r = append(r, make([]byte, 200)...)
			binary.BigEndian.PutUint16(r[3:], uint16(len(r)-headerLen+tagLen))
			return a.out.aead.Seal(r[:5], a.out.next(), r[5:], r[:5])
		}, alert: alertRecordOverflow},
		{name: "record at the limit with padding", wire: func(a *Layer) []byte {
			r := append([]byte(nil), recordHeader[:]...)
			r = append(r, bytes.Repeat([]byte{'p'}, 16000)...)
			r = append(r, typeApplicationData)
			r = append(r, make([]byte, maxPlaintext+1-len(r)+headerLen)...)
			binary.BigEndian.PutUint16(r[3:], uint16(len(r)-headerLen+tagLen))
			r = a.out.aead.Seal(r[:5], a.out.next(), r[5:], r[:5])
			return append(r, inner(a, typeAlert, []byte{1, 0})...)
		}, err: io.EOF, data: strings.Repeat("p", 16000)},
		{name: "16 KeyUpdates, then data", wire: func(a *Layer) []byte {
			var w []byte
			for range maxUselessRecords {
				w = append(w, inner(a, typeHandshake, []byte{24, 0, 0, 1, 0})...)
				a.out.update()
			}
			return append(w, inner(a, typeApplicationData, []byte("still here"))...)
		}, data: "still here"},
		{name: "17 KeyUpdates", wire: func(a *Layer) []byte {
			var w []byte
			for range maxUselessRecords + 1 {
				w = append(w, inner(a, typeHandshake, []byte{24, 0, 0, 1, 0})...)
				a.out.update()
			}
			return w
		}, alert: alertUnexpectedMessage},
		{name: "a KeyUpdate before every message, 1,000 times", wire: func(a *Layer) []byte {
			var w []byte
			for range 1000 {
				w = append(w, inner(a, typeHandshake, []byte{24, 0, 0, 1, 1})...)
				a.out.update()
				w = append(w, inner(a, typeApplicationData, []byte("m"))...)
			}
			return w
		}, data: strings.Repeat("m", 1000)},
		{name: "17 empty records", wire: func(a *Layer) []byte {
			var w []byte
			for range maxUselessRecords + 1 {
				w = append(w, inner(a, typeApplicationData, nil)...)
			}
			return w
		}, alert: alertUnexpectedMessage},
		{name: "17 user_canceled alerts", wire: func(a *Layer) []byte {
			var w []byte
			for range maxUselessRecords + 1 {
				w = append(w, inner(a, typeAlert, []byte{1, alertUserCanceled})...)
			}
			return w
		}, alert: alertUnexpectedMessage},
		{name: "8 empty records, 8 user_canceled, a KeyUpdate", wire: func(a *Layer) []byte {
			var w []byte
			for range 8 {
				w = append(w, inner(a, typeApplicationData, nil)...)
				w = append(w, inner(a, typeAlert, []byte{1, alertUserCanceled})...)
			}
			return append(w, inner(a, typeHandshake, []byte{24, 0, 0, 1, 0})...)
		}, alert: alertUnexpectedMessage},
		{name: "nothing after close_notify", wire: func(a *Layer) []byte {
			w := inner(a, typeAlert, []byte{1, 0})
			return append(w, inner(a, typeApplicationData, []byte("late"))...)
		}, err: io.EOF},
		{name: "data after KeyUpdate in its record", wire: func(a *Layer) []byte {
			return inner(a, typeHandshake, []byte{24, 0, 0, 1, 0, 24})
		}, alert: alertUnexpectedMessage},
		{name: "KeyUpdate split across records", wire: func(a *Layer) []byte {
			w := append(inner(a, typeHandshake, []byte{24, 0}), inner(a, typeHandshake, []byte{0, 1, 1})...)
			a.out.update()
			return append(w, inner(a, typeApplicationData, []byte("new key"))...)
		}, data: "new key"},
		{name: "data inside a split handshake message", wire: func(a *Layer) []byte {
			return append(inner(a, typeHandshake, []byte{24, 0}), inner(a, typeApplicationData, []byte("x"))...)
		}, alert: alertUnexpectedMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pairLayers(t, id)
			var got sink
			err := b.Open(tc.wire(a), &got)
			if got.String() != tc.data {
				t.Errorf("%d bytes of data, want %d", got.Len(), len(tc.data))
			}
			var ae *AlertError
			switch {
			case tc.alert != 0:
				if !errors.As(err, &ae) || ae.Alert != tc.alert {
					t.Fatalf("err %v, want alert %d", err, tc.alert)
				}
				// The closing alert is the failure's, fatal; or, for the
				// peer's own alert, close_notify (as crypto/tls's Close).
				peer := &Layer{in: b.out} // opens b's records from here on
				c := b.SealAlert(nil)
				var closing sink
				err := peer.Open(c, &closing)
				if !ae.Remote {
					var got *AlertError
					if !errors.As(err, &got) || !got.Remote || got.Alert != tc.alert {
						t.Fatalf("closing alert: %v", err)
					}
				} else if err != io.EOF {
					t.Fatalf("closing alert after the peer's: %v, want close_notify", err)
				}
				// The failure sticks: a valid record after it opens nothing.
				a2, _ := pairLayers(t, id)
				if err2 := b.Open(inner(a2, typeApplicationData, []byte("after")), &got); err2 != err && !errors.Is(err2, ae) {
					t.Fatalf("after the failure: %v", err2)
				}
				if got.String() != tc.data {
					t.Fatalf("data after the failure: %d bytes", got.Len())
				}
			case err != tc.err:
				t.Fatalf("err %v, want %v", err, tc.err)
			case err == io.EOF:
				if err := b.Open(nil, &got); err != io.EOF {
					t.Fatalf("after close_notify: %v", err)
				}
			}
		})
	}
}

// TestUnsent: after a short write, the records sent whole are counted,
// the one begun is finished from its own bytes, and the records never
// begun are sealed again, at the same sequence numbers, from the bytes
// the caller gives again (as the engine does): the peer reads the stream
// whole.
func TestUnsent(t *testing.T) {
	msg := pattern(3*maxPlaintext+100, 9)
	for _, update := range []bool{false, true} {
		a, _ := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
		a.updateOut.Store(update)
		full := a.Seal(nil, [][]byte{msg}, 0)
		for _, w := range []int{0, 3, keyUpdateLen, keyUpdateLen + 7, maxPlaintext + recordOverhead, len(full) / 2, len(full) - 1} {
			a, _ := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
			a.updateOut.Store(update)
			out := a.Seal(nil, [][]byte{msg[:maxPlaintext], msg[maxPlaintext:]}, 0)
			if !bytes.Equal(out, full) {
				t.Fatal("sealing is not deterministic")
			}
			done, keep, owed := a.Unsent(w)
			wire := append([]byte(nil), out[:w]...)
			if keep > w {
				wire = append(wire, out[w:keep]...)
			}
			wire = a.Seal(wire, [][]byte{msg[done:]}, owed)
			_, b := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
			var got sink
			if err := b.Open(wire, &got); err != nil || !bytes.Equal(got.Bytes(), msg) {
				t.Fatalf("update %v, w %d: %v, %d bytes", update, w, err, got.Len())
			}
		}
	}
}

// FuzzOpen: no input makes Open panic, and bytes that are records sealed
// by the peer open to exactly what was sealed, however the input is cut.
func FuzzOpen(f *testing.F) {
	a, _ := pairLayers(f, tls.TLS_AES_128_GCM_SHA256)
	f.Add(a.Seal(nil, [][]byte{[]byte("hello")}, 0), uint16(3), false)
	f.Add(inner(a, typeHandshake, []byte{24, 0, 0, 1, 1}), uint16(9), false)
	f.Add([]byte{23, 3, 3, 0, 20}, uint16(2), true)
	f.Fuzz(func(t *testing.T, wire []byte, cut uint16, garble bool) {
		_, b := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
		k := int(cut) % (len(wire) + 1)
		in := append([]byte(nil), wire...)
		var got sink
		if err := b.Open(in[:k], &got); err != nil {
			return
		}
		b.Open(in[k:], &got)
		if garble {
			return
		}
		// The same bytes as plaintext, sealed by the peer, come back.
		a, b := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
		sealed := a.Seal(nil, [][]byte{wire}, 0)
		got.Reset()
		if err := b.Open(sealed[:k], &got); err != nil {
			t.Fatal(err)
		}
		if err := b.Open(sealed[k:], &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), wire) {
			t.Fatalf("%d bytes came back as %d", len(wire), got.Len())
		}
	})
}

// The hot path allocates nothing: sealing into a buffer with room, and
// opening in place.
func BenchmarkSealOpen(b *testing.B) {
	for _, n := range []int{16, 1024, 64 << 10} {
		b.Run(byteSize(n), func(b *testing.B) {
			a, o := pairLayers(b, tls.TLS_AES_128_GCM_SHA256)
			p := pattern(n, 1)
			buf := make([]byte, 0, SealedLen(n))
			var got sink
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				buf = a.Seal(buf[:0], [][]byte{p}, 0)
				got.Reset()
				if err := o.Open(buf, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// TestPartialRecordCost: a record that arrives in parts costs what it
// holds. Its header waits inside the layer; its body in a buffer of the
// length the header announced, not of the largest record; and Compact,
// which the connection calls as it parks, shrinks that to the bytes
// received. The record still opens whole afterwards.
func TestPartialRecordCost(t *testing.T) {
	for _, size := range []int{100, 3000, maxPlaintext} {
		for _, have := range []int{1, headerLen, headerLen + 1, headerLen + 50} {
			a, b := pairLayers(t, tls.TLS_AES_128_GCM_SHA256)
			msg := pattern(size, 1)
			wire := a.Seal(nil, [][]byte{msg}, 0)
			var got sink
			if err := b.Open(append([]byte(nil), wire[:have]...), &got); err != nil {
				t.Fatal(err)
			}
			if !b.Pending() {
				t.Fatalf("%d of %d bytes: not pending", have, len(wire))
			}
			held := b.Held()
			switch {
			case have <= headerLen && held != 0:
				t.Errorf("%d bytes of a record (its header at most) hold a %d-byte buffer", have, held)
			case have > headerLen && (held < len(wire) || held > max(512, 2*len(wire)) || len(wire) > 8<<10 && held != fullRecord):
				t.Errorf("%d bytes of a %d-byte record hold %d bytes", have, len(wire), held)
			}
			b.Compact()
			if have > headerLen && b.Held() != have {
				t.Errorf("compacted: %d bytes of a record hold %d", have, b.Held())
			}
			if err := b.Open(append([]byte(nil), wire[have:]...), &got); err != nil || !bytes.Equal(got.Bytes(), msg) || b.Pending() || b.Held() != 0 {
				t.Fatalf("%d+%d bytes: %v, %d bytes out, pending %v", have, len(wire)-have, err, got.Len(), b.Pending())
			}
		}
	}
}

// BenchmarkKeyUpdate is what one KeyUpdate costs the reader: opening the
// record and the key schedule's step (HKDF, a new AEAD). A peer may make
// it do this at most maxUselessRecords times in a row.
func BenchmarkKeyUpdate(b *testing.B) {
	a, o := pairLayers(b, tls.TLS_AES_128_GCM_SHA256)
	var got sink
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		rec := inner(a, typeHandshake, []byte{24, 0, 0, 1, 0})
		a.out.update()
		b.StartTimer()
		if err := o.Open(rec, &got); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		// Data between them, as an honest peer sends, so that the limit
		// on records without data is never reached.
		if err := o.Open(inner(a, typeApplicationData, []byte("x")), &got); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
