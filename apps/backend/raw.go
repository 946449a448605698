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

// OnConnect connects to the program; a program that cannot be reached
// refuses the client with 503.
func (r *Raw) OnConnect(c *gateway.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.OpenTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, r.cfg.Network, r.cfg.Address)
	if err != nil {
		r.log.Warn("cannot connect to raw producer", "err", err)
		return gateway.Refuse(http.StatusServiceUnavailable, "producer unavailable")
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
		c.Close(websocket.StatusInternalError, "backend write failed")
	}
}

// OnDisconnect closes the program's connection: it sees EOF.
func (r *Raw) OnDisconnect(c *gateway.Conn, _ websocket.CloseStatus) {
	if st, ok := c.State().(*rawClient); ok {
		st.nc.Close()
	}
}

func (r *Raw) readLoop(c *gateway.Conn, st *rawClient) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("raw producer reader panicked", "panic", v, "stack", string(debug.Stack()))
			c.Close(websocket.StatusInternalError, "internal error")
		}
	}()
	typ := websocket.TextMessage
	if r.cfg.Raw.Binary {
		typ = websocket.BinaryMessage
	}
	send := func(p []byte) bool {
		if typ == websocket.TextMessage && !utf8.Valid(p) {
			r.log.Warn("raw producer sent bytes that are not UTF-8 on a text route; closing the client")
			c.Close(websocket.StatusInternalError, "backend sent invalid UTF-8")
			return false
		}
		return c.Send(typ, p) != websocket.ErrClosed
	}
	buf := make([]byte, min(int64(64<<10), r.maxMsg))
	var pending []byte
	for {
		n, err := st.nc.Read(buf)
		chunk := buf[:n]
		if !r.cfg.Raw.Split {
			if n > 0 && !send(chunk) {
				return
			}
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
				c.Close(websocket.StatusMessageTooBig, "record over the size limit")
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
				c.Close(websocket.StatusInternalError, "backend connection lost")
			}
			return
		}
	}
}
