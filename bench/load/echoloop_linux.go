package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// echoConn is one connection's state in the echo loop: how much of the
// request frame is written, and where the parser is in the reply stream.
type echoConn struct {
	fd    int
	wOff  int // bytes of the frame written; len(frame) when waiting for the reply
	t0    time.Time
	hdr   [14]byte
	hdrN  int
	left  int64 // payload bytes of the current frame still to skip
	inHdr bool  // between frames: reading a header
	fin   bool
	op    byte
	wantW bool // registered for EPOLLOUT
}

// echoLoop drives every connection from one epoll loop on one locked
// thread: each sends the frame, reads the whole echoed message (however
// the server fragments it, control frames skipped), and sends again. One
// read and one write per message and no goroutine switch keep the client
// cheaper than any server, so that on a small machine the server is what
// is measured. It returns the echoes completed before the run stopped (at
// d, or at limit echoes), the time that took, and their latencies; replies
// still in flight then are awaited but not counted.
func echoLoop(cs []*Conn, frame []byte, d time.Duration, limit int64) (int64, *Hist, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, nil, 0, err
	}
	defer unix.Close(ep)
	ecs := make([]echoConn, len(cs))
	for i, c := range cs {
		if c.br.Buffered() > 0 {
			return 0, nil, 0, errors.New("unexpected bytes from the server before the run")
		}
		sc, ok := c.NC.(syscall.Conn)
		if !ok {
			return 0, nil, 0, errors.New("not a socket")
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return 0, nil, 0, err
		}
		var cerr error
		rc.Control(func(fd uintptr) {
			ecs[i] = echoConn{fd: int(fd), inHdr: true}
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
			cerr = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if cerr != nil {
			return 0, nil, 0, cerr
		}
	}
	h := new(Hist)
	var count, stopCount int64
	var stopElapsed time.Duration
	stopping := false
	start := time.Now()
	stop := func() {
		if !stopping {
			stopping, stopCount, stopElapsed = true, count, time.Since(start)
		}
	}
	deadline := start.Add(d)
	write := func(i int) error {
		e := &ecs[i]
		for e.wOff < len(frame) {
			n, err := unix.Write(e.fd, frame[e.wOff:])
			if n > 0 {
				e.wOff += n
				continue
			}
			if err == unix.EAGAIN {
				if !e.wantW {
					e.wantW = true
					ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(i)}
					unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, e.fd, &ev)
				}
				return nil
			}
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("connection %d: write: %v", i, err)
		}
		if e.wantW {
			e.wantW = false
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
			unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, e.fd, &ev)
		}
		return nil
	}
	send := func(i int) error {
		ecs[i].wOff = 0
		ecs[i].t0 = time.Now()
		return write(i)
	}
	for i := range ecs {
		if err := send(i); err != nil {
			return 0, nil, 0, err
		}
	}
	outstanding := len(ecs)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 256<<10)
	for outstanding > 0 {
		now := time.Now()
		if now.After(deadline) {
			stop()
		}
		if stopping && now.After(deadline.Add(10*time.Second)) {
			return stopCount, h, stopElapsed, fmt.Errorf("%d echoes never came back", outstanding)
		}
		k, err := unix.EpollWait(ep, events, 100)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return count, h, time.Since(start), err
		}
		for _, ev := range events[:k] {
			i := int(ev.Fd)
			e := &ecs[i]
			if ev.Events&unix.EPOLLOUT != 0 && e.wOff < len(frame) {
				if err := write(i); err != nil {
					return count, h, time.Since(start), err
				}
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
				continue
			}
			n, err := unix.Read(e.fd, buf)
			if n <= 0 {
				if err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				return count, h, time.Since(start), fmt.Errorf("connection %d: the server closed it (%v)", i, err)
			}
			done, perr := e.parse(buf[:n])
			if perr != nil {
				return count, h, time.Since(start), fmt.Errorf("connection %d: %w", i, perr)
			}
			if done == 0 {
				continue
			}
			if done > 1 || e.wOff < len(frame) {
				return count, h, time.Since(start), fmt.Errorf("connection %d: more replies than requests", i)
			}
			if !stopping {
				h.Record(time.Since(e.t0))
				count++
				if limit > 0 && count >= limit {
					stop()
				}
			}
			if stopping {
				outstanding--
				continue
			}
			if err := send(i); err != nil {
				return count, h, time.Since(start), err
			}
		}
	}
	stop()
	return stopCount, h, stopElapsed, nil
}

// parse consumes reply bytes and returns how many whole data messages
// ended in them.
func (e *echoConn) parse(b []byte) (int, error) {
	done := 0
	for len(b) > 0 {
		if e.inHdr {
			// Collect the 2-byte start, then the rest the start announces.
			need := 2
			if e.hdrN >= 2 {
				need = hdrSize(e.hdr[0], e.hdr[1])
			}
			k := copy(e.hdr[e.hdrN:need], b)
			e.hdrN += k
			b = b[k:]
			if e.hdrN < 2 || e.hdrN < hdrSize(e.hdr[0], e.hdr[1]) {
				continue
			}
			e.fin, e.op = e.hdr[0]&0x80 != 0, e.hdr[0]&0x0F
			l := int64(e.hdr[1] & 0x7F)
			switch l {
			case 126:
				l = int64(binary.BigEndian.Uint16(e.hdr[2:4]))
			case 127:
				l = int64(binary.BigEndian.Uint64(e.hdr[2:10]))
			}
			if e.op == 0x8 {
				return done, ErrClosed
			}
			e.left, e.inHdr, e.hdrN = l, false, 0
		}
		k := int64(len(b))
		if k > e.left {
			k = e.left
		}
		e.left -= k
		b = b[k:]
		if e.left == 0 {
			e.inHdr = true
			if e.fin && e.op < 0x8 {
				done++
			}
		}
	}
	return done, nil
}

// hdrSize is a frame header's length from its first two bytes.
func hdrSize(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}
