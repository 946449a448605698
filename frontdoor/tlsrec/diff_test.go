package tlsrec

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testcert"
)

// The differential tests send the same record streams, sealed by a client
// that knows its traffic secret, to a connection whose record layer was
// taken over and to a plain crypto/tls server, and compare what each
// delivers and how each ends: the application data, and the end of the
// stream (clean, truncated, the alert this side sent, the alert the peer
// sent). crypto/tls is the reference; where the two differ on purpose the
// difference is in knownDifferences, with its reason, and pinned there.

// rec is one record of a stream, as a client could write it.
type rec struct {
	inner   byte   // content type inside; 0: none (padding only)
	body    []byte // content
	pad     int    // zero bytes after the content type
	outer   byte   // outer type; 0: application_data
	version uint16 // legacy_record_version; 0: 0x0303
	tamper  bool   // one ciphertext bit flipped
	raw     []byte // unprotected bytes written as they are, instead
	rekey   bool   // the sender moves to its next key after this record
}

// stream is a client's bytes: records, optionally cut short by cut bytes.
type stream struct {
	recs []rec
	cut  int
}

// wire seals s's records with the client traffic secret of a connection
// using cipher suite id, as the client would.
func (s stream) wire(id uint16, secret []byte) []byte {
	var d direction
	if err := d.set(suiteByID(id), bytes.Clone(secret)); err != nil {
		panic(err)
	}
	var w []byte
	for _, r := range s.recs {
		if r.raw != nil {
			w = append(w, r.raw...)
			continue
		}
		h := len(w)
		outer, version := r.outer, r.version
		if outer == 0 {
			outer = typeApplicationData
		}
		if version == 0 {
			version = 0x0303
		}
		w = append(w, outer, byte(version>>8), byte(version), 0, 0)
		w = append(w, r.body...)
		if r.inner != 0 {
			w = append(w, r.inner)
		}
		w = append(w, make([]byte, r.pad)...)
		n := len(w) - h - headerLen
		binary.BigEndian.PutUint16(w[h+3:], uint16(n+tagLen))
		w = d.aead.Seal(w[:h+headerLen], d.next(), w[h+headerLen:], w[h:h+headerLen])
		if r.tamper {
			w[len(w)-1] ^= 1
		}
		if r.rekey {
			d.update()
		}
	}
	if s.cut > 0 && s.cut < len(w) {
		w = w[:len(w)-s.cut]
	}
	return w
}

// outcome is how a server took a stream.
type outcome struct {
	data []byte
	end  string // "eof", "truncated", "sent alert N", "peer's alert N", or an error
}

func (o outcome) String() string {
	return fmt.Sprintf("%d bytes, %s", len(o.data), o.end)
}

// socketPair is two connected UNIX stream sockets: a connection with
// kernel buffers both ways, like TCP, without a port.
func socketPair(t testing.TB) (a, b net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// diffConfigs are the server's and client's Configs of every run: TLS 1.3,
// and no session tickets, so that after the handshake the server writes
// nothing unless the stream makes it.
func diffConfigs(t testing.TB) (server, client *tls.Config) {
	s, c := testcert.Config(t)
	s = s.Clone()
	s.SessionTicketsDisabled = true
	s.MinVersion = tls.VersionTLS13
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	return s, c
}

// handshake completes a handshake between server and a client on the
// other end, and returns the client's socket and the connection's suite
// and traffic secrets.
func handshake(t testing.TB, server *tls.Conn, clientEnd net.Conn, ccfg *tls.Config) (suite uint16, clientSecret, serverSecret []byte) {
	var kl lockedBuffer
	ccfg = ccfg.Clone()
	ccfg.KeyLogWriter = &kl
	cli := tls.Client(clientEnd, ccfg)
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split([]byte(kl.String()), []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) != 3 {
			continue
		}
		secret, _ := hex.DecodeString(string(f[2]))
		switch string(f[0]) {
		case "CLIENT_TRAFFIC_SECRET_0":
			clientSecret = secret
		case "SERVER_TRAFFIC_SECRET_0":
			serverSecret = secret
		}
	}
	return cli.ConnectionState().CipherSuite, clientSecret, serverSecret
}

// viaCryptoTLS runs s against a crypto/tls server: it reads until an
// error, closes, and the alert it sent is read off the wire.
func viaCryptoTLS(t testing.TB, s stream, scfg, ccfg *tls.Config) outcome {
	se, ce := socketPair(t)
	defer ce.Close()
	srv := tls.Server(se, scfg)
	id, cs, ss := handshake(t, srv, ce, ccfg)
	go func() {
		ce.Write(s.wire(id, cs))
		ce.(*net.UnixConn).CloseWrite()
	}()
	var o outcome
	buf := make([]byte, 64<<10)
	var err error
	for {
		var n int
		n, err = srv.Read(buf)
		o.data = append(o.data, buf[:n]...)
		if err != nil {
			break
		}
	}
	srv.Close()
	back, _ := io.ReadAll(ce)
	sent := firstAlert(id, ss, back)
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "remote error":
		o.end = fmt.Sprintf("peer's alert %d", reflect.ValueOf(oe.Err).Uint())
	case sent >= 0 && sent != alertCloseNotify:
		o.end = fmt.Sprintf("sent alert %d", sent)
	case err == io.EOF:
		o.end = "eof"
	case err == io.ErrUnexpectedEOF:
		o.end = "truncated"
	default:
		o.end = err.Error()
	}
	return o
}

// firstAlert opens the server's records after the handshake (sealed with
// the server traffic secret, following its KeyUpdates) and returns the
// first alert's description, or -1.
func firstAlert(id uint16, secret, w []byte) int {
	var d direction
	if err := d.set(suiteByID(id), bytes.Clone(secret)); err != nil {
		return -1
	}
	for len(w) >= headerLen {
		n := headerLen + int(binary.BigEndian.Uint16(w[3:]))
		if len(w) < n {
			return -1
		}
		r := append([]byte(nil), w[:n]...)
		w = w[n:]
		pt, ok := d.open(r)
		if !ok {
			return -1
		}
		typ, data, ok := innerType(pt)
		switch {
		case !ok:
			return -1
		case typ == typeAlert && len(data) == 2:
			return int(data[1])
		case typ == typeHandshake && len(data) == 5 && data[0] == typeKeyUpdate:
			d.update()
		}
	}
	return -1
}

// viaTakeover runs s against a connection accepted by NewListener and
// taken over after its handshake, feeding the stream to Open in the
// pieces split gives.
func viaTakeover(t testing.TB, s stream, scfg, ccfg *tls.Config, split func(n int) int) outcome {
	se, ce := socketPair(t)
	defer ce.Close()
	tl := NewListener(nil, scfg).(*listener)
	srv := tls.Server(&tap{Conn: se}, tl.config)
	id, cs, _ := handshake(t, srv, ce, ccfg)
	l, raw, _, err := Take(srv)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	defer raw.Close()
	w := s.wire(id, cs)
	var o outcome
	var got sink
	for len(w) > 0 && err == nil {
		k := min(len(w), max(1, split(len(w))))
		err = l.Open(append([]byte(nil), w[:k]...), &got)
		w = w[k:]
	}
	o.data = got.Bytes()
	var ae *AlertError
	switch {
	case err == nil && l.Pending():
		o.end = "truncated"
	case err == nil || err == io.EOF:
		o.end = "eof"
	case errors.As(err, &ae) && ae.Remote:
		o.end = fmt.Sprintf("peer's alert %d", ae.Alert)
	case errors.As(err, &ae):
		o.end = fmt.Sprintf("sent alert %d", ae.Alert)
	default:
		o.end = err.Error()
	}
	return o
}

func wholeReads(n int) int { return n }

// randomStream makes a stream of the records a hostile or a careless
// client may send, from r: data of every size up to and past the limit,
// padding, empty records, KeyUpdates (whole, split, malformed, requesting
// one back), alerts of every kind and length, tampered and garbage
// records, versions, and a cut at the end. It leaves out the records of
// knownDifferences, which are pinned there.
func randomStream(r *rand.Rand) stream {
	var s stream
	n := 1 + r.IntN(40)
	for range n {
		op := r.IntN(16)
		if r.IntN(100) < 75 {
			op = []int{0, 4, 5, 6, 7, 9, 16}[r.IntN(7)] // records an honest client may send
		}
		switch op {
		case 16:
			// A run of records without data, around crypto/tls's limit.
			for range 8 + r.IntN(12) {
				switch r.IntN(3) {
				case 0:
					s.recs = append(s.recs, rec{inner: typeApplicationData})
				case 1:
					s.recs = append(s.recs, rec{inner: typeAlert, body: []byte{1, alertUserCanceled}})
				case 2:
					s.recs = append(s.recs, rec{inner: typeHandshake, body: []byte{typeKeyUpdate, 0, 0, 1, byte(r.IntN(2))}, rekey: true})
				}
			}
		case 0, 1, 2:
			s.recs = append(s.recs, rec{inner: typeApplicationData, body: bytes.Repeat([]byte{byte(r.IntN(256))}, 1+r.IntN(300))})
		case 3:
			size := []int{maxPlaintext - 1, maxPlaintext, maxPlaintext + 1}[r.IntN(3)]
			s.recs = append(s.recs, rec{inner: typeApplicationData, body: make([]byte, size)})
		case 4:
			s.recs = append(s.recs, rec{inner: typeApplicationData})
		case 5:
			body := make([]byte, r.IntN(maxPlaintext))
			pad := []int{0, 1, maxPlaintext - len(body), r.IntN(300)}[r.IntN(4)]
			if r.IntN(4) == 0 {
				pad = maxPlaintext + 1 - len(body) // one over
			}
			s.recs = append(s.recs, rec{inner: typeApplicationData, body: body, pad: pad})
		case 6:
			s.recs = append(s.recs, rec{inner: typeHandshake, body: []byte{typeKeyUpdate, 0, 0, 1, byte(r.IntN(2))}, rekey: true})
		case 7:
			// A KeyUpdate across two records.
			k := 1 + r.IntN(4)
			ku := []byte{typeKeyUpdate, 0, 0, 1, byte(r.IntN(2))}
			s.recs = append(s.recs, rec{inner: typeHandshake, body: ku[:k]}, rec{inner: typeHandshake, body: ku[k:], rekey: true})
		case 8:
			// Malformed KeyUpdates.
			bodies := [][]byte{{typeKeyUpdate, 0, 0, 1, 2}, {typeKeyUpdate, 0, 0, 2, 0, 0}, {typeKeyUpdate, 0, 0, 1, 0, typeKeyUpdate}, {typeKeyUpdate, 0, 0, 0}, {typeKeyUpdate, 1, 0, 1}, {typeKeyUpdate, 0, 0, 2, 0}}
			s.recs = append(s.recs, rec{inner: typeHandshake, body: bodies[r.IntN(len(bodies))]})
		case 9:
			s.recs = append(s.recs, rec{inner: typeAlert, body: []byte{1, alertUserCanceled}})
		case 10:
			bodies := [][]byte{{1, alertCloseNotify}, {2, alertCloseNotify}, {2, byte(r.IntN(256))}, {1, byte(r.IntN(256))}, {1}, {1, 0, 0}, nil}
			s.recs = append(s.recs, rec{inner: typeAlert, body: bodies[r.IntN(len(bodies))]})
		case 11:
			s.recs = append(s.recs, rec{inner: typeApplicationData, body: []byte("tampered"), tamper: true})
		case 12:
			s.recs = append(s.recs, rec{inner: typeApplicationData, body: []byte("v"), version: []uint16{0x0301, 0x0304, 0x0300}[r.IntN(3)]})
		case 13:
			// Protected records of another outer type, and unprotected ones
			// (but change_cipher_spec: see knownDifferences).
			if r.IntN(2) == 0 {
				s.recs = append(s.recs, rec{inner: typeApplicationData, body: []byte("o"), outer: []byte{typeAlert, typeHandshake, 24, 99}[r.IntN(4)]})
			} else {
				g := []byte{[]byte{typeAlert, typeHandshake, typeApplicationData, 99}[r.IntN(4)], 3, 3, 0, byte(r.IntN(40))}
				g = append(g, bytes.Repeat([]byte{7}, int(g[4]))...)
				s.recs = append(s.recs, rec{raw: g})
			}
		case 14:
			s.recs = append(s.recs, rec{raw: []byte{typeApplicationData, 3, 3, byte(0x41 + r.IntN(3)), byte(r.IntN(256))}})
		case 15:
			s.recs = append(s.recs, rec{inner: []byte{99, 0x80, 255}[r.IntN(3)], body: []byte("x")})
		}
	}
	if r.IntN(4) == 0 {
		s.cut = 1 + r.IntN(30)
	}
	return s
}

// TestDifferential runs random streams (a fixed number, seeded; set
// WSGATE_TLS_DIFF_STREAMS for more) against both servers, each fed to the
// taken-over layer whole and in random pieces.
func TestDifferential(t *testing.T) {
	streams := 300
	if n, err := fmt.Sscan(os.Getenv("WSGATE_TLS_DIFF_STREAMS"), &streams); n == 0 || err != nil {
		streams = 300
	}
	scfg, ccfg := diffConfigs(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range streams {
		s := randomStream(r)
		want := viaCryptoTLS(t, s, scfg, ccfg)
		pieces := rand.New(rand.NewPCG(seed, uint64(i)))
		for _, split := range []func(int) int{wholeReads, func(n int) int { return 1 + pieces.IntN(min(n, 20000)) }} {
			got := viaTakeover(t, s, scfg, ccfg, split)
			if !bytes.Equal(got.data, want.data) || got.end != want.end {
				t.Fatalf("stream %d (seed %d): crypto/tls %v, takeover %v\n%s", i, seed, want, got, describe(s))
			}
		}
	}
}

// FuzzDifferential: the same comparison, with the stream drawn from the
// fuzzer's bytes (go test -fuzz FuzzDifferential ./frontdoor/tlsrec).
func FuzzDifferential(f *testing.F) {
	scfg, ccfg := diffConfigs(f)
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(3), uint64(1<<40))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		s := randomStream(rand.New(rand.NewPCG(a, b)))
		want := viaCryptoTLS(t, s, scfg, ccfg)
		pieces := rand.New(rand.NewPCG(b, a))
		got := viaTakeover(t, s, scfg, ccfg, func(n int) int { return 1 + pieces.IntN(min(n, 20000)) })
		if !bytes.Equal(got.data, want.data) || got.end != want.end {
			t.Fatalf("crypto/tls %v, takeover %v\n%s", want, got, describe(s))
		}
	})
}

func describe(s stream) string {
	var b bytes.Buffer
	for _, r := range s.recs {
		if r.raw != nil {
			fmt.Fprintf(&b, "  raw % x\n", r.raw[:min(len(r.raw), 8)])
			continue
		}
		fmt.Fprintf(&b, "  inner %d, %d bytes (% x), pad %d, outer %d, version %#x, tamper %v, rekey %v\n",
			r.inner, len(r.body), r.body[:min(len(r.body), 6)], r.pad, r.outer, r.version, r.tamper, r.rekey)
	}
	fmt.Fprintf(&b, "  cut %d", s.cut)
	return b.String()
}

// knownDifferences are the streams on which a taken-over connection and
// crypto/tls (of the Go release this is built with) differ on purpose.
// Each is pinned both ways: if crypto/tls changes, this test says so.
var knownDifferences = []struct {
	name, why           string
	stream              stream
	cryptoTLS, takeover string
}{
	{
		name: "change_cipher_spec after the handshake",
		why: "RFC 8446 §5: a change_cipher_spec after the peer's Finished is an unexpected record; crypto/tls drops it " +
			"as it does during the handshake (counted among its 16 useless records)",
		stream:    stream{recs: []rec{{raw: []byte{20, 3, 3, 0, 1, 1}}, {inner: typeApplicationData, body: []byte("x")}}},
		cryptoTLS: "1 bytes, eof", takeover: "0 bytes, sent alert 10",
	},
	{
		name: "a record of the tag alone",
		why: "RFC 8446 §5.4: a plaintext without a non-zero octet has no content type and MUST get unexpected_message; " +
			"crypto/tls's padding loop never runs on an empty plaintext and takes it as empty application data",
		stream:    stream{recs: []rec{{}, {inner: typeApplicationData, body: []byte("x")}}},
		cryptoTLS: "1 bytes, eof", takeover: "0 bytes, sent alert 10",
	},
	{
		name: "a malformed post-handshake message other than KeyUpdate",
		why: "a server accepts no post-handshake message but KeyUpdate (§4.6), so the layer refuses the others with " +
			"unexpected_message unread; crypto/tls parses a message of a type it knows first and answers a malformed one with decode_error",
		stream:    stream{recs: []rec{{inner: typeHandshake, body: []byte{4, 0, 0, 1, 0}}}},
		cryptoTLS: "0 bytes, sent alert 50", takeover: "0 bytes, sent alert 10",
	},
}

func TestKnownDifferences(t *testing.T) {
	scfg, ccfg := diffConfigs(t)
	for _, d := range knownDifferences {
		t.Run(d.name, func(t *testing.T) {
			if got := viaCryptoTLS(t, d.stream, scfg, ccfg).String(); got != d.cryptoTLS {
				t.Errorf("crypto/tls: %s, was %s: the difference (%s) has changed; look again", got, d.cryptoTLS, d.why)
			}
			if got := viaTakeover(t, d.stream, scfg, ccfg, wholeReads).String(); got != d.takeover {
				t.Errorf("takeover: %s, want %s", got, d.takeover)
			}
		})
	}
}
