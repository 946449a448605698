package tlsrec

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// maxRecorded bounds what a tap copies in each direction. A handshake's
// flight after the secrets (server: its certificate chain, Finished and
// tickets; client: Finished) and a WebSocket upgrade fit several times
// over; a connection past it stays with crypto/tls.
const maxRecorded = 32 << 10

// NewListener is tls.NewListener whose connections can be taken over by
// Take. config is used as tls.NewListener would use it (see ServerConfig).
func NewListener(inner net.Listener, config *tls.Config) net.Listener {
	return &listener{Listener: inner, config: ServerConfig(config)}
}

// ServerConfig returns the Config to give Server for connections that
// config would serve: each handshake runs with a copy of config (or of
// what its GetConfigForClient returns) whose KeyLogWriter is the
// connection's tap, in front of config's own KeyLogWriter if it has one.
func ServerConfig(config *tls.Config) *tls.Config {
	base := config.Clone()
	user := config.GetConfigForClient
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		t, _ := hello.Conn.(*tap)
		cfg := config
		if user != nil {
			c, err := user(hello)
			if err != nil {
				return nil, err
			}
			if c != nil {
				cfg = c
			}
		}
		if t == nil {
			if cfg == config {
				return nil, nil
			}
			return cfg, nil
		}
		// Session tickets stay valid across connections: a Config returned
		// here without its own ticket keys uses the listener's (see
		// tls.Config.GetConfigForClient).
		c := cfg.Clone()
		c.GetConfigForClient = nil
		// A key log the user asked for still gets every line: the tap
		// reads them on the way.
		c.KeyLogWriter = &keyLogWriter{t: t, user: cfg.KeyLogWriter}
		return c, nil
	}
	return base
}

// Server is tls.Server for a connection that Take may take over; config
// must come from ServerConfig.
func Server(conn net.Conn, config *tls.Config) *tls.Conn {
	return tls.Server(&tap{Conn: conn}, config)
}

type listener struct {
	net.Listener
	config *tls.Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.config), nil
}

// tap is the net.Conn under a tls.Conn made by NewListener. It learns the
// connection's application traffic secrets from the key log, and copies
// the whole records that pass after them (see the package comment).
type tap struct {
	net.Conn

	mu           sync.Mutex
	clientSecret []byte
	serverSecret []byte
	stopped      bool // recording ended: Take will decline
	draining     bool // Read answers a timeout without reading
	rd, wr       recorder
}

// recorder follows a byte stream's record boundaries and, once on, keeps
// whole records from the first boundary after it was turned on.
type recorder struct {
	hdr  [headerLen]byte
	hn   int // header bytes seen of the current record
	left int // body bytes still to come of the current record
	on   bool
	rec  []byte
}

func (r *recorder) feed(p []byte, want bool) (over bool) {
	for len(p) > 0 {
		if r.left == 0 {
			if r.hn == 0 && want && !r.on {
				r.on = true
			}
			k := min(headerLen-r.hn, len(p))
			copy(r.hdr[r.hn:], p[:k])
			r.hn += k
			if r.on {
				r.rec = append(r.rec, p[:k]...)
			}
			p = p[k:]
			if r.hn == headerLen {
				r.hn = 0
				r.left = int(binary.BigEndian.Uint16(r.hdr[3:]))
			}
			continue
		}
		k := min(r.left, len(p))
		if r.on {
			r.rec = append(r.rec, p[:k]...)
		}
		r.left -= k
		p = p[k:]
	}
	return len(r.rec) > maxRecorded
}

// errDrained is what a draining tap's Read returns: a timeout, which
// crypto/tls treats as temporary and does not remember.
var errDrained = &net.OpError{Op: "read", Net: "tap", Err: os.ErrDeadlineExceeded}

func (t *tap) Read(b []byte) (int, error) {
	t.mu.Lock()
	if t.draining {
		t.mu.Unlock()
		return 0, errDrained
	}
	t.mu.Unlock()
	n, err := t.Conn.Read(b)
	t.record(&t.rd, b[:n], &t.clientSecret)
	return n, err
}

func (t *tap) Write(b []byte) (int, error) {
	n, err := t.Conn.Write(b)
	t.record(&t.wr, b[:n], &t.serverSecret)
	return n, err
}

// record feeds the bytes that crossed the tap to one direction's
// recorder, which starts at a record boundary once that direction's
// secret is known.
func (t *tap) record(r *recorder, p []byte, secret *[]byte) {
	if len(p) == 0 {
		return
	}
	t.mu.Lock()
	if !t.stopped && r.feed(p, *secret != nil) {
		t.stopLocked()
	}
	t.mu.Unlock()
}

// stop ends recording and frees what was recorded; the connection stays
// with crypto/tls.
func (t *tap) stop() {
	t.mu.Lock()
	t.stopLocked()
	t.mu.Unlock()
}

func (t *tap) stopLocked() {
	t.stopped = true
	t.rd, t.wr = recorder{}, recorder{}
	// The secrets are not left for the garbage collector to free whenever
	// it likes (RFC 8446 §7.2: delete what is no longer needed).
	clear(t.clientSecret)
	clear(t.serverSecret)
	t.clientSecret, t.serverSecret = nil, nil
}

// Write of the key log (tls.Config.KeyLogWriter): one line per call,
// "LABEL <client random> <secret>" in hex. Only the application traffic
// secrets are kept; nothing is written anywhere.
func (t *tap) keyLog(line []byte) {
	f := bytes.Fields(line)
	if len(f) != 3 {
		return
	}
	secret := make([]byte, hex.DecodedLen(len(f[2])))
	if _, err := hex.Decode(secret, f[2]); err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	switch string(f[0]) {
	case "CLIENT_TRAFFIC_SECRET_0":
		t.clientSecret = secret
	case "SERVER_TRAFFIC_SECRET_0":
		t.serverSecret = secret
	}
}

// keyLogWriter is the io.Writer face of tap's key log, kept apart from
// net.Conn's Write, in front of the key log of the user's Config, if any.
type keyLogWriter struct {
	t    *tap
	user io.Writer
}

func (k *keyLogWriter) Write(b []byte) (int, error) {
	k.t.keyLog(b)
	if k.user != nil {
		return k.user.Write(b)
	}
	return len(b), nil
}

// SyscallConn gives crypto/tls's users (the daemon parks idle TLS
// connections that stay with crypto/tls) the socket's descriptor.
func (t *tap) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := t.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// CloseWrite half-closes the socket, for tls.Conn.CloseWrite.
func (t *tap) CloseWrite() error {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
