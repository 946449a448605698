// Package producer is the Go SDK for programs that serve WebSocket
// clients from behind wsgate, over the producer protocol
// (docs/backend-protocol.md). A producer listens on a UNIX socket (or TCP
// on loopback); the gateway connects to it, one connection per client or
// a few multiplexed ones, as its route says. The same producer code serves
// both: every frame names its client.
//
// Two styles are offered: a Handler (OnOpen, OnMessage, OnClose), and an
// event loop in the spirit of apache-ws (Server.Next returns Accept,
// Message and Close events).
package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/internal/recovered"
)

// MessageType is a message's type.
type MessageType uint8

// Message types, with the protocol's values.
const (
	Text   MessageType = MessageType(wire.KindText)
	Binary MessageType = MessageType(wire.KindBinary)
)

// Handler serves clients. Calls for the clients of one gateway connection
// are made one at a time, in order, from that connection's goroutine:
// return quickly, and hand long work to a goroutine of your own (any
// goroutine may call Client.Send). OnOpen runs in a goroutine of its own
// so that a slow authorization does not hold up other clients.
type Handler interface {
	// OnOpen decides, before the client's handshake completes, whether to
	// accept it. Set a.Subprotocol or a.Header to answer with them; return
	// an error to refuse (Refuse picks the HTTP status, 403 otherwise).
	OnOpen(c *Client, a *Accept) error
	// OnMessage receives a complete message. data is valid only until
	// OnMessage returns.
	OnMessage(c *Client, typ MessageType, data []byte)
	// OnClose is called once when the client has gone, with its close code.
	OnClose(c *Client, code uint16, reason string)
}

// Accept is the answer to a client being opened.
type Accept struct {
	// Subprotocol must be one the client offered, or empty.
	Subprotocol string
	// Header is added to the 101 response.
	Header http.Header
}

// RefuseError refuses a client with an HTTP status.
type RefuseError struct {
	Status int
	Reason string
}

func (e *RefuseError) Error() string { return fmt.Sprintf("refused with %d: %s", e.Status, e.Reason) }

// Refuse returns an error for OnOpen that refuses the client with status.
func Refuse(status int, reason string) error { return &RefuseError{Status: status, Reason: reason} }

// Claims returns the claims of the client's identity (a token's, or the
// headers a forward-auth service answered with), nil for none.
func (c *Client) Claims() map[string]any {
	v := c.Header.Get("Meta-Auth-Claims")
	if v == "" {
		return nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil
	}
	return m
}

// ErrClosed is returned when sending to a client that has gone.
var ErrClosed = errors.New("producer: client closed")

// ErrTooLarge is returned, and nothing is written, for a message whose
// frame would be over the largest the gateway takes (the route's
// max_message_size plus 64 KiB, which the gateway's HELLO says): the
// gateway would skip it and close the client with 1009, or drop a
// broadcast. Errors for it wrap ErrTooLarge and say the sizes.
var ErrTooLarge = wire.ErrTooLarge

// Client is one WebSocket client, as the gateway described it.
type Client struct {
	ID        uint64
	Path      string
	Query     string
	Host      string
	Remote    string
	TLS       bool
	Protocols []string
	Header    http.Header
	// User and AuthType are who the client proved to be at the gateway
	// (the route's auth: a token's subject, a forward-auth service's
	// user, a certificate's name) and how ("Bearer", "Forward", "Cert",
	// or httpd's "Basic"...); empty for an anonymous client. They come
	// from OPEN's Meta-User and Meta-Auth-Type, which the gateway never
	// takes from a client; Claims parses Meta-Auth-Claims.
	User, AuthType string
	// Route is the gateway route the client came through.
	Route string
	// Resumed is set for a client the gateway held while a producer
	// restarted, or moved here from an instance that drained: its
	// WebSocket stayed open, and what it sent meanwhile follows. Rooms are
	// the rooms it is in (the gateway keeps them), so the producer can
	// rebuild its own state. An ACCEPT's subprotocol and headers are
	// ignored for it: its handshake is long done.
	Resumed bool
	Rooms   []string

	link   *link
	closed atomic.Bool
	state  atomic.Pointer[any]
}

// SetState attaches application state to the client.
func (c *Client) SetState(v any) { c.state.Store(&v) }

// State returns what SetState attached.
func (c *Client) State() any {
	if p := c.state.Load(); p != nil {
		return *p
	}
	return nil
}

// Send sends a message to the client. It is safe from any goroutine. It
// waits while the gateway connection's send queue is full.
func (c *Client) Send(typ MessageType, data []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.link.fits(1+8+1, len(data), "message"); err != nil {
		return err
	}
	b := getFrame(wire.MessageHeaderSize + len(data))
	*b = wire.AppendMessage(*b, wire.TypeSend, c.ID, uint8(typ), data)
	return c.link.send(b)
}

// SendText sends a text message.
func (c *Client) SendText(s string) error { return c.Send(Text, []byte(s)) }

// Close closes the client with a code (0 for an empty close frame) and a
// reason. OnClose follows when the gateway confirms.
func (c *Client) Close(code uint16, reason string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	b := getFrame(16 + len(reason))
	*b = wire.AppendClosed(*b, wire.TypeClose, c.ID, code, reason)
	return c.link.send(b)
}

// Join adds the client to a room of its route.
func (c *Client) Join(room string) error {
	b := getFrame(16 + len(room))
	*b = wire.AppendMembership(*b, wire.TypeJoin, c.ID, room)
	return c.link.send(b)
}

// Leave removes the client from a room.
func (c *Client) Leave(room string) error {
	b := getFrame(16 + len(room))
	*b = wire.AppendMembership(*b, wire.TypeLeave, c.ID, room)
	return c.link.send(b)
}

// Broadcast sends a message to every client of this client's route,
// this one included unless exceptSelf.
func (c *Client) Broadcast(typ MessageType, data []byte, exceptSelf bool) error {
	var except uint64
	if exceptSelf {
		except = c.ID
	}
	if err := c.link.fits(1+8+1, len(data), "broadcast"); err != nil {
		return err
	}
	b := getFrame(16 + len(data))
	*b = wire.AppendBroadcast(*b, except, uint8(typ), data)
	return c.link.send(b)
}

// SendRoom sends a message to every client in a room of this client's
// route, this one included unless exceptSelf.
func (c *Client) SendRoom(room string, typ MessageType, data []byte, exceptSelf bool) error {
	var except uint64
	if exceptSelf {
		except = c.ID
	}
	if err := c.link.fits(1+2+len(room)+8+1, len(data), "room message"); err != nil {
		return err
	}
	b := getFrame(32 + len(room) + len(data))
	*b = wire.AppendRoom(*b, room, except, uint8(typ), data)
	return c.link.send(b)
}

// ErrNoCount is returned by Count when the gateway does not answer COUNT
// (a gateway older than the frame ignores it).
var ErrNoCount = errors.New("producer: the gateway did not answer COUNT")

// Count asks the gateway how many clients are in room ("" for the whole
// route) on every gateway process that shares the route's bus (httpd's
// children, a cluster of daemons), and how many processes were counted.
// Without a bus it is the count of the gateway this client came through.
// It waits for the answer until ctx ends. The answer is read by the
// goroutine that calls the Handler for this client's gateway connection:
// call Count from a goroutine of your own, not from OnMessage itself.
func (c *Client) Count(ctx context.Context, room string) (count, nodes int, err error) {
	l := c.link
	ch := make(chan wire.Frame, 1)
	l.cmu.Lock()
	l.nextID++
	id := l.nextID
	l.counts[id] = ch
	l.cmu.Unlock()
	b := getFrame(16 + len(room))
	*b = wire.AppendCount(*b, id, room)
	if err := l.send(b); err != nil {
		return 0, 0, err
	}
	select {
	case f := <-ch:
		return int(f.Count), int(f.Nodes), nil
	case <-ctx.Done():
		l.cmu.Lock()
		delete(l.counts, id)
		l.cmu.Unlock()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, 0, ErrNoCount
		}
		return 0, 0, ctx.Err()
	}
}

// Server accepts the gateway's connections and serves their clients.
type Server struct {
	Handler Handler
	// Log receives errors; nil means slog.Default().
	Log *slog.Logger
	// MaxClients refuses clients beyond this many with 503; 0 is no limit.
	MaxClients int
	// MaxFrame bounds a frame from the gateway (default 64 MiB).
	MaxFrame int

	mu        sync.Mutex
	listeners []net.Listener
	links     map[*link]struct{}
	clients   atomic.Int64
	closing   bool
	wg        sync.WaitGroup
}

// Clients returns the number of clients open.
func (s *Server) Clients() int { return int(s.clients.Load()) }

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Listen listens on a UNIX socket path, replacing a stale socket file and
// making the socket accessible to the gateway's user (mode 0777, as
// ouistiti's sample servers do, unless mode is given). The socket is bound
// under a temporary name, listening and given its mode before it is
// renamed into place, so a gateway that finds the path never finds it
// refusing connections (which it counts as the producer being down).
// Closing the listener removes the path.
func Listen(path string, mode ...os.FileMode) (net.Listener, error) {
	return listen(path, false, mode)
}

// ListenTakeOver is Listen for the new instance of a planned handover: a
// socket in use at path is replaced (atomically, by rename), so that the
// gateway's next connections reach this instance; the old instance then
// calls Server.Drain.
func ListenTakeOver(path string, mode ...os.FileMode) (net.Listener, error) {
	return listen(path, true, mode)
}

func listen(path string, takeOver bool, mode []os.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			if !takeOver {
				return nil, fmt.Errorf("%s is in use", path)
			}
		} else {
			os.Remove(path)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".wsgate-%d.sock", os.Getpid()))
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	m := os.FileMode(0o777)
	if len(mode) > 0 {
		m = mode[0]
	}
	if err := os.Chmod(tmp, m); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	fi, _ := os.Stat(path)
	return &unixListener{UnixListener: ln, path: path, fi: fi}, nil
}

// unixListener removes its path when closed, as a net.UnixListener does
// for the name it was bound to, unless the path is no longer its socket:
// in a handover the new instance has put its own socket there, and the
// old one must not remove it.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, err := os.Stat(l.path); err == nil && l.fi != nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}

// Replaced reports whether another instance has put its socket at the
// path ln (from Listen) listens on: the new instance of a handover has
// started, and this one should Drain.
func Replaced(ln net.Listener) bool {
	ul, ok := ln.(*unixListener)
	if !ok || ul.fi == nil {
		return false
	}
	fi, err := os.Stat(ul.path)
	return err == nil && !os.SameFile(fi, ul.fi)
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Serve accepts gateway connections on ln until Shutdown or an error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, ln)
	if s.links == nil {
		s.links = map[*link]struct{}{}
	}
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		l := s.newLink(nc)
		// Registered under the lock that Shutdown and Drain take to set
		// closing: a connection accepted just before they closed the
		// listener is either closed here or in the set they close, never
		// left open for wait to wait on forever.
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			l.sender.Close()
			nc.Close()
			return nil
		}
		s.links[l] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go l.serve()
	}
}

// Shutdown stops accepting, closes every gateway connection (the gateway
// holds their clients for the next instance with the route option hold,
// or closes them with 1012) and waits for handlers to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for l := range s.links {
		l.nc.Close()
	}
	s.mu.Unlock()
	return s.wait(ctx)
}

func (s *Server) wait(ctx context.Context) error {
	done := make(chan struct{})
	recovered.Go("producer shutdown", func() { s.wg.Wait(); close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Drain hands this instance's clients to the next one, for a planned
// handover: start the new instance on the same socket path first (Listen
// puts its socket in place atomically), then call Drain on the old one.
// It stops accepting and sends DRAIN on every gateway connection. The
// gateway stops sending on it, answers DRAINED after the last message it
// had sent, and re-announces the connection's clients to the new instance
// (Client.Resumed) once this one has closed it, so nothing is lost or
// reordered. Each connection closes when its DRAINED has been served and
// the answers to open OPENs and every queued frame are written; its
// clients then get OnClose with 1012 and "moved". Drain returns when every
// connection has closed, or closes what remains when ctx ends (its clients
// are then held or closed by the gateway, as on a crash).
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	links := make([]*link, 0, len(s.links))
	for l := range s.links {
		links = append(links, l)
	}
	s.mu.Unlock()
	for _, l := range links {
		b := getFrame(8)
		*b = wire.AppendEmpty(*b, wire.TypeDrain)
		l.sender.Send(b, false)
	}
	err := s.wait(ctx)
	if err != nil {
		s.mu.Lock()
		for l := range s.links {
			l.nc.Close()
		}
		s.mu.Unlock()
	}
	return err
}

// link is one connection from the gateway.
type link struct {
	s      *Server
	nc     net.Conn
	route  string
	mode   uint8
	sender *wire.Sender

	cmu     sync.Mutex
	clients map[uint64]*Client
	nextID  uint32
	counts  map[uint32]chan wire.Frame

	opens   sync.WaitGroup // OnOpen calls in flight, answered before a drained link closes
	drained bool           // DRAINED arrived: the clients left are moved, not gone
	// maxFrame is the largest frame the gateway takes, from its HELLO (0:
	// a gateway that does not say).
	maxFrame int
}

// fits says whether a frame of head bytes (type and fields) before a
// payload of n bytes may be sent.
func (l *link) fits(head, n int, what string) error {
	if l.maxFrame > 0 && head+n > l.maxFrame {
		return fmt.Errorf("%w: a %s of %d bytes makes a frame of %d, and the gateway takes at most %d (the route's max_message_size plus 64 KiB)",
			ErrTooLarge, what, n, head+n, l.maxFrame)
	}
	return nil
}

const queueLimit = 4 << 20

func (s *Server) newLink(nc net.Conn) *link {
	l := &link{s: s, nc: nc, clients: map[uint64]*Client{}, counts: map[uint32]chan wire.Frame{}}
	l.sender = wire.NewSender(nc, queueLimit, putFrame, func(error) { nc.Close() })
	return l
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// getFrame returns an empty buffer with room for n bytes.
func getFrame(n int) *[]byte {
	b := framePool.Get().(*[]byte)
	if cap(*b) < n {
		nb := make([]byte, 0, n)
		return &nb
	}
	*b = (*b)[:0]
	return b
}

func putFrame(b *[]byte) {
	if cap(*b) <= 64<<10 {
		framePool.Put(b)
	}
}

// send writes or queues a frame (see wire.Sender). The gateway never stops
// reading a producer, so waiting here is short.
func (l *link) send(b *[]byte) error {
	if err := l.sender.Send(b, true); err != nil {
		return ErrClosed
	}
	return nil
}

// serve reads the gateway's frames until the connection ends.
func (l *link) serve() {
	s := l.s
	defer s.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			s.log().Error("producer connection panicked", "panic", v, "stack", string(debug.Stack()))
		}
		l.nc.Close()
		l.sender.Close()
		l.cmu.Lock()
		clients := l.clients
		l.clients = nil
		l.cmu.Unlock()
		code, reason := uint16(1006), "gateway connection lost"
		if l.drained {
			code, reason = 1012, "moved"
		}
		for _, c := range clients {
			l.ended(c, code, reason)
		}
		s.mu.Lock()
		delete(s.links, l)
		s.mu.Unlock()
	}()
	max := s.MaxFrame
	if max <= 0 {
		max = 64 << 20
	}
	bufSize := 64 << 10
	r := wire.NewReader(l.nc, bufSize, max)
	hello, err := r.Next()
	if err != nil || hello.Type != wire.TypeHello {
		return
	}
	l.route, l.mode, l.maxFrame = hello.Route, hello.Mode, int(hello.MaxFrame)
	hb := getFrame(8)
	*hb = wire.AppendHelloReply(*hb, wire.Version)
	if err := l.send(hb); err != nil {
		return
	}
	for {
		f, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log().Debug("gateway connection ended", "err", err)
			}
			return
		}
		switch f.Type {
		case wire.TypeOpen:
			c := &Client{ID: f.Conn, Path: f.Path, Query: f.Query, Host: f.Host, Remote: f.Remote, TLS: f.TLS,
				Protocols: f.Protocols, Header: http.Header{}, Route: l.route, Resumed: f.Resumed, Rooms: f.Rooms, link: l}
			for _, h := range f.Headers {
				c.Header.Add(h.Name, h.Value)
			}
			c.User, c.AuthType = c.Header.Get("Meta-User"), c.Header.Get("Meta-Auth-Type")
			l.cmu.Lock()
			l.clients[c.ID] = c
			l.cmu.Unlock()
			l.opens.Add(1)
			recovered.Go("producer OnOpen", func() { defer l.opens.Done(); l.open(c) })
		case wire.TypeDrained:
			// The gateway sends nothing more here but the answers to COUNTs
			// already asked: answer the OPENs in flight, take those
			// answers, write what is queued, and close.
			l.drained = true
			l.opens.Wait()
			l.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			for l.countsPending() {
				f, err := r.Next()
				if err != nil {
					break
				}
				if f.Type == wire.TypeCounted {
					l.counted(f)
				}
			}
			for deadline := time.Now().Add(5 * time.Second); !l.sender.Idle() && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			return
		case wire.TypeMessage:
			if c := l.client(f.Conn); c != nil {
				l.call(func() { s.Handler.OnMessage(c, MessageType(f.Kind), f.Payload) })
			}
		case wire.TypeCounted:
			l.counted(f)
		case wire.TypeClosed:
			l.cmu.Lock()
			c := l.clients[f.Conn]
			delete(l.clients, f.Conn)
			l.cmu.Unlock()
			if c != nil {
				l.ended(c, f.Code, f.Reason)
			}
		}
	}
}

func (l *link) counted(f wire.Frame) {
	l.cmu.Lock()
	ch := l.counts[f.ID]
	delete(l.counts, f.ID)
	l.cmu.Unlock()
	if ch != nil {
		ch <- f
	}
}

func (l *link) countsPending() bool {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return len(l.counts) > 0
}

func (l *link) client(id uint64) *Client {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.clients[id]
}

// call runs handler code, turning a panic into a log entry.
func (l *link) call(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			l.s.log().Error("producer handler panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// open asks the handler about a new client and answers the gateway.
func (l *link) open(c *Client) {
	s := l.s
	var err error
	a := &Accept{Header: http.Header{}}
	if n := s.clients.Add(1); s.MaxClients > 0 && n > int64(s.MaxClients) {
		err = Refuse(http.StatusServiceUnavailable, "too many clients")
	} else {
		err = errors.New("handler panicked")
		l.call(func() { err = s.Handler.OnOpen(c, a) })
	}
	if err != nil {
		l.cmu.Lock()
		if l.clients != nil {
			delete(l.clients, c.ID)
		}
		l.cmu.Unlock()
		if !c.closed.Swap(true) {
			s.clients.Add(-1)
		}
		status := http.StatusForbidden
		var re *RefuseError
		if errors.As(err, &re) && re.Status >= 400 && re.Status <= 599 {
			status = re.Status
		}
		b := getFrame(32 + len(err.Error()))
		*b = wire.AppendRefuse(*b, c.ID, uint16(status), err.Error())
		l.send(b)
		return
	}
	var hs []wire.Header
	for k, vs := range a.Header {
		for _, v := range vs {
			hs = append(hs, wire.Header{Name: k, Value: v})
		}
	}
	b := getFrame(64)
	*b = wire.AppendAccept(*b, c.ID, a.Subprotocol, hs)
	l.send(b)
}

func (l *link) ended(c *Client, code uint16, reason string) {
	if c.closed.Swap(true) {
		return
	}
	l.s.clients.Add(-1)
	l.call(func() { l.s.Handler.OnClose(c, code, reason) })
}
