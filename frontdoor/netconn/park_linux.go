package netconn

import (
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The parking poller: one epoll instance, shared by every parked
// connection of the process, and one goroutine that reads its events. The
// epoll descriptor is itself pollable (readable while it has events), so
// that goroutine waits in Go's own netpoller, like any socket read, and
// asks for events without blocking: it never holds an OS thread in a
// blocking epoll_wait, and waking it costs what waking a reader costs.
//
// A connection registers with EPOLLONESHOT, so an event disarms it
// and exactly one resume follows; the registration stays in the interest
// list (re-armed with EPOLL_CTL_MOD on the next park) until the socket is
// closed, which removes it (the descriptor is never duplicated).
//
// Events carry a connection number, not the descriptor: a descriptor
// number is reused as soon as a socket closes, a number here never is.
type poller struct {
	dead  atomic.Bool // the loop has stopped: park no more
	ep    int
	f     *os.File // keeps ep open and registered with the runtime
	rc    syscall.RawConn
	mu    sync.Mutex
	conns map[uint64]*conn
	next  uint64
}

var (
	thePoller  *poller
	pollerOnce sync.Once
)

// getPoller returns the process's poller, made on first use; nil if it
// cannot be made, and then connections wait the ordinary way.
func getPoller() *poller {
	pollerOnce.Do(func() {
		failed := func(err error) {
			slog.Warn("websocket poller unavailable; idle connections will keep their goroutines", "err", err)
		}
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			failed(err)
			return
		}
		if err := unix.SetNonblock(ep, true); err != nil {
			unix.Close(ep)
			failed(err)
			return
		}
		f := os.NewFile(uintptr(ep), "wsgate-park-epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			failed(err)
			return
		}
		thePoller = &poller{ep: ep, f: f, rc: rc, conns: map[uint64]*conn{}}
		go thePoller.loop()
	})
	return thePoller
}

// canPark reports whether this platform parks idle connections.
const canPark = true

// park registers d for one readability event. It is called on d's reading
// goroutine, which returns right after; the event (or Close) starts a new
// one. It reports false when the socket cannot be watched, and the caller
// keeps waiting the ordinary way.
//
// A plain socket is detached as it parks: the socket is kept as a bare
// descriptor (a duplicate, registered here) and its net.Conn or os.File is
// closed. The runtime's poll descriptor, the netFD and the addresses go
// with it, about 600 bytes that an idle connection would otherwise keep
// for nothing; the resumed reader attaches an os.File to the descriptor.
func (d *conn) park() bool {
	p := getPoller()
	if p == nil || p.dead.Load() {
		return false
	}
	// The parser's state goes back to its pool while parked (if it holds
	// no partial frame); this is the reading goroutine, before any event
	// is armed.
	d.ws.Quiet()
	if d.sl != nil {
		// A record begun and not finished keeps what it holds, no more.
		d.sl.rec.Compact()
	}
	if d.detachable {
		return d.detach(p)
	}
	// registered is settled before track marks the connection parked:
	// once the event is armed, the reader it wakes may park again at
	// once, and this goroutine must touch d no more (it did, setting
	// registered after EpollCtl returned: a race under stress-ng).
	op := unix.EPOLL_CTL_MOD
	if !d.registered {
		op = unix.EPOLL_CTL_ADD
	}
	d.registered = true
	ev := p.track(d)
	released()
	var cerr error
	// Inside Control the descriptor cannot be closed under us, so the
	// number registered is this socket's.
	err := d.rc.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(p.ep, op, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.mu.Lock()
		delete(p.conns, d.pollID)
		p.mu.Unlock()
		// Nobody else can have claimed it: no event was armed. Close may
		// have, and then it has started a resume that will find the socket
		// closed; the caller must not read on. (That resume's next park
		// tries EPOLL_CTL_MOD, fails, and reads on.)
		if !d.state.CompareAndSwap(stateParked, stateRunning) {
			return true
		}
		if op == unix.EPOLL_CTL_ADD {
			d.registered = false
		}
		return false
	}
	return true
}

// track numbers d, on its first park, and lists it as parked; then marks
// it parked, before its event is armed, so that the event finds it so.
// It returns the one-shot readability event to register d's socket with.
func (p *poller) track(d *conn) unix.EpollEvent {
	p.mu.Lock()
	if d.pollID == 0 {
		p.next++
		d.pollID = p.next
	}
	p.conns[d.pollID] = d
	p.mu.Unlock()
	d.state.Store(stateParked)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setEventData(&ev, d.pollID)
	return ev
}

// detach parks a plain socket without its stream. Under mu, so no sender
// or Close sees it half done: duplicate the descriptor, register the
// duplicate, close the stream. An event may claim the connection as soon
// as the duplicate is registered; its reader attaches once mu is free.
func (d *conn) detach(p *poller) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.writers > 0 {
		return false
	}
	nfd := -1
	var derr error
	if err := d.rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return false
	}
	ev := p.track(d)
	if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, nfd, &ev); err != nil {
		// Nothing was armed and Close waits for mu: the connection is
		// still this reader's.
		p.mu.Lock()
		delete(p.conns, d.pollID)
		p.mu.Unlock()
		d.state.Store(stateRunning)
		unix.Close(nfd)
		return false
	}
	d.nc.Close()
	d.nc, d.rc, d.rawFD = nil, nil, int32(nfd)
	// The callbacks' scratch goes back too; attach takes one again.
	putScratch(d.io)
	d.io = nil
	released()
	return true
}

// attach gives a resumed plain socket a stream again: an os.File on the
// descriptor, which the runtime's poller watches as it did the net.Conn.
// Called by the reading goroutine.
func (d *conn) attach() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return net.ErrClosed
	}
	if d.nc != nil {
		return nil
	}
	fd := int(d.rawFD)
	if p := thePoller; p != nil {
		unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, fd, nil)
	}
	f := os.NewFile(uintptr(fd), "websocket")
	rc, err := f.SyscallConn()
	if err != nil {
		// Not expected for a socket; the connection cannot go on.
		f.Close()
		d.rawFD, d.closed = -1, true
		return err
	}
	d.nc, d.rc, d.rawFD = f, rc, -1
	d.io = getScratch()
	return nil
}

// closeDetached closes a parked socket's descriptor; under mu.
func (d *conn) closeDetached() error {
	if d.rawFD < 0 {
		return nil
	}
	fd := int(d.rawFD)
	d.rawFD = -1
	if p := thePoller; p != nil {
		unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, fd, nil)
	}
	return unix.Close(fd)
}

// parkedPongs counts the pongs taken from parked sockets (pong).
var parkedPongs atomic.Uint64

// ParkedPongs reports how many keepalive pongs were taken from parked
// connections without waking them.
func ParkedPongs() uint64 { return parkedPongs.Load() }

// pong takes a pong that is all a parked plain socket holds, the answer
// to a keepalive ping sent to the parked connection, without waking it:
// no goroutine, no stream attached, no parser state. On the poller's
// goroutine, for the socket's one-shot event; under mu, so no sender or
// Close runs meanwhile. It reports false, leaving the event to wake the
// connection, for anything else: other bytes, more than a pong, a pong the
// engine wants read the ordinary way (whose bytes are then handed to the
// reader), an error.
func (d *conn) pong(p *poller) bool {
	if !d.detachable || d.state.Load() != stateParked {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.rawFD < 0 || len(d.buffered) > 0 {
		return false
	}
	fd := int(d.rawFD)
	if d.sl != nil {
		if !d.pongSealed(fd) {
			return false
		}
	} else {
		var b [maxPong + 1]byte
		n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != nil || !isPong(b[:n]) {
			return false
		}
		if m, err := unix.Read(fd, b[:n]); err != nil || m != n {
			return false
		}
		if !d.ws.TakePong() {
			d.buffered = append([]byte(nil), b[:n]...)
			return false
		}
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setEventData(&ev, d.pollID)
	if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return false
	}
	parkedPongs.Add(1)
	return true
}

// maxPong is the longest pong frame a client sends: a 2-byte header, a
// 4-byte masking key and at most 125 bytes of payload (RFC 6455 §5.5).
const maxPong = 2 + 4 + 125

// isPong reports whether p is exactly one client pong frame: FIN, opcode
// 0xA, no reserved bits, masked, and nothing after it.
func isPong(p []byte) bool {
	return len(p) >= 6 && p[0] == 0x8A && p[1]&0x80 != 0 && int(p[1]&0x7f) <= 125 && len(p) == 6+int(p[1]&0x7f)
}

// pongSealed is pong for a connection whose TLS record layer was taken
// over: the socket must hold exactly one whole record, which the layer
// opens; if its plaintext is a pong, the engine takes it, and otherwise
// the plaintext is handed to the reader, which the caller wakes. Under
// mu, with the layer's reader parked (the poller reads for it).
func (d *conn) pongSealed(fd int) bool {
	rec := d.sl.rec
	if rec.Pending() {
		return false
	}
	// A pong in a record: a 5-byte header, the frame, the content type,
	// padding, a 16-byte tag. Records longer than this are not pongs.
	var b [512]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil || n < 5 || n == len(b) || n != 5+(int(b[3])<<8|int(b[4])) {
		return false
	}
	if m, err := unix.Read(fd, b[:n]); err != nil || m != n {
		return false
	}
	var pt plainBuf
	if err := rec.Open(b[:n], &pt); err != nil {
		// The record is consumed and the layer has failed (for good): end
		// the stream for the reader, whose close sends the layer's alert.
		unix.Shutdown(fd, unix.SHUT_RD)
		return false
	}
	if isPong(pt.b) && d.ws.TakePong() {
		return true
	}
	d.buffered = append([]byte(nil), pt.b...)
	return false
}

// plainBuf collects what a record layer opens, for pongSealed.
type plainBuf struct{ b []byte }

func (p *plainBuf) Write(b []byte) (int, error) {
	p.b = append(p.b, b...)
	return len(b), nil
}

// unpark claims a parked connection for a new reading goroutine: on an
// event, or on Close (a parked connection has no reader to notice).
func (d *conn) unpark() {
	if !d.state.CompareAndSwap(stateParked, stateRunning) {
		return
	}
	if p := thePoller; p != nil {
		p.mu.Lock()
		delete(p.conns, d.pollID)
		p.mu.Unlock()
	}
	go d.resume()
}

// loop reads events until the epoll descriptor fails, which should never
// happen; then it resumes every parked connection and refuses new parks,
// so that connections go on being served the ordinary way. A panic while
// dispatching is logged and the loop goes on.
func (p *poller) loop() {
	for {
		panicked, err := p.poll()
		if panicked {
			continue
		}
		slog.Error("websocket poller stopped; idle connections will keep their goroutines", "err", err)
		p.dead.Store(true)
		p.mu.Lock()
		parked := make([]*conn, 0, len(p.conns))
		for _, d := range p.conns {
			parked = append(parked, d)
		}
		p.mu.Unlock()
		for _, d := range parked {
			d.unpark()
		}
		return
	}
}

func (p *poller) poll() (panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			slog.Error("websocket poller panicked", "panic", v, "stack", string(debug.Stack()))
			panicked = true
		}
	}()
	events := make([]unix.EpollEvent, 128)
	var failed error
	err = p.rc.Read(func(uintptr) bool {
		for {
			n, err := unix.EpollWait(p.ep, events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				failed = err
				return true
			}
			if n == 0 {
				return false // wait for the epoll descriptor to be readable
			}
			for i := range events[:n] {
				id := eventData(&events[i])
				p.mu.Lock()
				d := p.conns[id]
				p.mu.Unlock()
				if d != nil && !d.pong(p) {
					d.unpark()
				}
			}
		}
	})
	if err == nil {
		err = failed
	}
	return false, err
}

type parkState = atomic.Uint32

// The kernel's struct epoll_event is {uint32 events; uint64 data}: packed
// on amd64 (12 bytes), naturally aligned on other architectures (16).
// golang.org/x/sys/unix declares the data as two int32 fields, Fd and Pad,
// placed where the kernel's data is on each architecture. A connection's
// number is the whole 64-bit data: setEventData and eventData treat Fd and
// Pad as those eight bytes, and the declarations below stop the build if a
// version of x/sys ever lays the struct out otherwise (Fd and Pad not
// adjacent, or not ending the struct).
const (
	evDataStart = unsafe.Offsetof(unix.EpollEvent{}.Fd)
	evDataEnd   = unsafe.Offsetof(unix.EpollEvent{}.Pad) + unsafe.Sizeof(unix.EpollEvent{}.Pad)
	evSize      = unsafe.Sizeof(unix.EpollEvent{})
)

var (
	_ [evDataEnd - evDataStart - 8]struct{}   // the data is at least 8 bytes,
	_ [8 - (evDataEnd - evDataStart)]struct{} // and at most,
	_ [evSize - evDataEnd]struct{}            // inside the struct,
	_ [evDataEnd - evSize]struct{}            // at its end.
)

func setEventData(ev *unix.EpollEvent, v uint64) {
	*(*uint64)(unsafe.Pointer(uintptr(unsafe.Pointer(ev)) + evDataStart)) = v
}

func eventData(ev *unix.EpollEvent) uint64 {
	return *(*uint64)(unsafe.Pointer(uintptr(unsafe.Pointer(ev)) + evDataStart))
}

// Parked returns the number of connections parked now: idle, holding no
// goroutine.
func Parked() int {
	p := thePoller
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
