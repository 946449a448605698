package main

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// relayServer is the proxy group's floor, as tcpecho is the echo group's:
// a Go program that copies bytes between each client and its own
// connection to the upstream, with one epoll loop of its own, edge
// triggered, one read per wakeup (a read shorter than the buffer emptied
// the socket, as nginx reads). It checks nothing and frames nothing: what
// it costs is what any Go proxy pays for the sockets, the system calls
// and the runtime, so the distance from it to nginx is Go's, and the
// distance from wsgate to it is wsgate's own work (parsing, validating,
// masking, flow control, metrics).
//
// A write the socket does not take whole waits for room with poll(2),
// holding up the loop: fine for a floor, which never meets a slow reader.
func relayServer(addr string) error {
	if *upstream == "" {
		return errors.New("relay needs -upstream host:port")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	r := &relay{ep: ep, sides: map[uint32]*relaySide{}}
	go r.loop()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go r.add(c)
	}
}

type relay struct {
	ep    int
	mu    sync.Mutex
	sides map[uint32]*relaySide
	next  uint32
}

// relaySide is one socket of a pair; peer is the other.
type relaySide struct {
	fd   int
	id   uint32
	peer *relaySide
}

// own takes c's descriptor away from Go's poller: a duplicate, in
// non-blocking mode, and c closed.
func own(c net.Conn) (int, error) {
	defer c.Close()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	return fd, unix.SetNonblock(fd, true)
}

func (r *relay) add(c net.Conn) {
	u, err := net.Dial("tcp", *upstream)
	if err != nil {
		c.Close()
		return
	}
	cfd, err1 := own(c)
	ufd, err2 := own(u)
	if err1 != nil || err2 != nil {
		unix.Close(cfd)
		unix.Close(ufd)
		return
	}
	a, b := &relaySide{fd: cfd}, &relaySide{fd: ufd}
	a.peer, b.peer = b, a
	r.mu.Lock()
	for _, s := range []*relaySide{a, b} {
		r.next++
		s.id = r.next
		r.sides[s.id] = s
	}
	r.mu.Unlock()
	for _, s := range []*relaySide{a, b} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
		ev.Fd = int32(s.id) // a pair's number, never reused (a descriptor is)
		if err := unix.EpollCtl(r.ep, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			r.drop(a)
			return
		}
	}
}

// drop closes both sides of a pair (closing removes them from epoll).
func (r *relay) drop(s *relaySide) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range []*relaySide{s, s.peer} {
		if _, ok := r.sides[x.id]; ok {
			delete(r.sides, x.id)
			unix.Close(x.fd)
		}
	}
}

func (r *relay) loop() {
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.EpollWait(r.ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			panic(err)
		}
		for i := range events[:n] {
			r.mu.Lock()
			s := r.sides[uint32(events[i].Fd)]
			r.mu.Unlock()
			if s != nil && !r.pump(s, buf) {
				r.drop(s)
			}
		}
	}
}

// pump copies what s has to its peer; false when the pair is over.
func (r *relay) pump(s *relaySide, buf []byte) bool {
	for {
		n, err := unix.Read(s.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return true
		}
		if n <= 0 {
			return false
		}
		if !writeAll(s.peer.fd, buf[:n]) {
			return false
		}
		if n < len(buf) {
			return true
		}
	}
}

func writeAll(fd int, p []byte) bool {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
				return false
			}
		case err != nil:
			return false
		default:
			p = p[n:]
		}
	}
	return true
}
