package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Raw serves a route from a seed-style program in raw mode: one
// connection per client, the client's messages written as raw bytes, and
// the program's bytes read back as messages (split at a delimiter when
// one is set). docs/backend-protocol.md lists what this mode cannot do.
type Raw struct {
	cfg    Config
	log    *slog.Logger
	maxMsg int64
	// writeTimeout bounds one write to the program.
	writeTimeout time.Duration
}

// NewRaw returns a raw-mode backend.
func NewRaw(cfg Config) (*Raw, error) {
	if cfg.Raw == nil {
		cfg.Raw = &RawConfig{}
	}
	cfg.Mode = PerClient
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Raw{cfg: cfg, log: slog.Default(), writeTimeout: 30 * time.Second}, nil
}

// Config returns the backend's configuration, with defaults applied.
func (r *Raw) Config() Config { return r.cfg }

// Provision learns the route's limits.
func (r *Raw) Provision(ctx gateway.AppContext) error {
	r.log = ctx.Logger.With("producer", r.cfg.Address, "protocol", "raw")
	r.maxMsg = ctx.Route.Policy.MaxMessageSize
	if r.maxMsg <= 0 {
		r.maxMsg = websocket.DefaultMaxMessageSize
	}
	return nil
}

type rawClient struct {
	nc  net.Conn
	wmu sync.Mutex
}

// OnOpen connects to the program; a program that cannot be reached
// refuses the client with 503.
func (r *Raw) OnOpen(ctx context.Context, c *gateway.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.OpenTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, r.cfg.Network, r.cfg.Address)
	if err != nil {
		r.log.Debug("cannot connect to raw producer", "err", err)
		return gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseBackendDown, "producer unavailable")
	}
	st := &rawClient{nc: nc}
	c.SetState(st)
	go r.readLoop(c, st)
	return nil
}

// OnMessage writes the message's bytes to the program.
func (r *Raw) OnMessage(c *gateway.Conn, m gateway.Message) {
	st, ok := c.State().(*rawClient)
	if !ok {
		return
	}
	st.wmu.Lock()
	st.nc.SetWriteDeadline(time.Now().Add(r.writeTimeout))
	_, err := st.nc.Write(m.Data)
	st.wmu.Unlock()
	if err != nil {
		c.CloseFor(gateway.CauseBackendError, websocket.StatusInternalError, "backend write failed")
	}
}

// OnClose closes the program's connection: it sees EOF.
func (r *Raw) OnClose(c *gateway.Conn, _ websocket.CloseStatus) {
	if st, ok := c.State().(*rawClient); ok {
		st.nc.Close()
	}
}

func (r *Raw) readLoop(c *gateway.Conn, st *rawClient) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("raw producer reader panicked", "panic", v, "stack", string(debug.Stack()))
			c.CloseFor(websocket.CauseInternalError, websocket.StatusInternalError, "internal error")
		}
	}()
	typ := websocket.TextMessage
	if r.cfg.Raw.Binary {
		typ = websocket.BinaryMessage
	}
	send := func(p []byte) bool {
		if typ == websocket.TextMessage && !utf8.Valid(p) {
			r.log.Warn("raw producer sent bytes that are not UTF-8 on a text route; closing the client")
			c.CloseFor(gateway.CauseBackendError, websocket.StatusInternalError, "backend sent invalid UTF-8")
			return false
		}
		return c.Send(typ, p) != websocket.ErrClosed
	}
	buf := make([]byte, min(int64(64<<10), r.maxMsg)+utf8.UTFMax)
	var pending []byte
	carry := 0 // bytes of an incomplete UTF-8 sequence kept at buf's start
	for {
		n, err := st.nc.Read(buf[carry : len(buf)-utf8.UTFMax+carry])
		chunk := buf[:carry+n]
		if !r.cfg.Raw.Split {
			// Each read is a message; a character the program wrote in two
			// writes (or that a read cut in two) is completed by the next
			// read, not refused.
			send1 := chunk
			carry = 0
			if typ == websocket.TextMessage && err == nil {
				send1, carry = splitIncomplete(chunk)
			}
			if len(send1) > 0 && !send(send1) {
				return
			}
			copy(buf, chunk[len(send1):])
		} else {
			for len(chunk) > 0 {
				i := bytes.IndexByte(chunk, r.cfg.Raw.Delimiter)
				if i < 0 {
					pending = append(pending, chunk...)
					break
				}
				rec := chunk[:i]
				if len(pending) > 0 {
					rec = append(pending, rec...)
					pending = pending[:0]
				}
				if !send(rec) {
					return
				}
				chunk = chunk[i+1:]
			}
			if int64(len(pending)) > r.maxMsg {
				c.CloseFor(gateway.CauseBackendOversize, websocket.StatusMessageTooBig, "record over the size limit")
				return
			}
		}
		if err != nil {
			if len(pending) > 0 && !send(pending) {
				return
			}
			if errors.Is(err, io.EOF) {
				c.Close(websocket.StatusNormalClosure, "")
			} else if !c.Engine().Closing() {
				c.CloseFor(gateway.CauseBackendGone, websocket.StatusInternalError, "backend connection lost")
			}
			return
		}
	}
}

// splitIncomplete splits p before a UTF-8 sequence that p ends in the
// middle of, if any: the head can be validated now, and the tail (at most
// three bytes) waits for the rest. Bytes that can never start a valid
// sequence stay in the head, where validation refuses them.
func splitIncomplete(p []byte) ([]byte, int) {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if !utf8.RuneStart(p[i]) {
			continue
		}
		if !utf8.FullRune(p[i:]) {
			return p[:i], len(p) - i
		}
		break
	}
	return p, 0
}
