package load

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fanoutReader counts the bytes arriving on many connections with one
// epoll loop on a locked thread.
type fanoutReader struct {
	ep      int
	perConn []int64
	total   atomic.Int64
	failed  atomic.Value
	stop    atomic.Bool
	done    chan struct{}
}

func newFanoutReader(cs []*Conn) (*fanoutReader, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := &fanoutReader{ep: ep, perConn: make([]int64, len(cs)), done: make(chan struct{})}
	fds := make([]int, len(cs))
	for i, c := range cs {
		if c.br.Buffered() > 0 {
			return nil, errors.New("bytes arrived before the first message")
		}
		sc, ok := c.NC.(syscall.Conn)
		if !ok {
			return nil, errors.New("not a socket")
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return nil, err
		}
		var cerr error
		rc.Control(func(fd uintptr) {
			fds[i] = int(fd)
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
			cerr = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if cerr != nil {
			return nil, cerr
		}
	}
	go f.loop(fds)
	return f, nil
}

func (f *fanoutReader) loop(fds []int) {
	defer close(f.done)
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for !f.stop.Load() {
		k, err := unix.EpollWait(f.ep, events, 100)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			f.failed.Store(err)
			return
		}
		for _, ev := range events[:k] {
			i := int(ev.Fd)
			for {
				r, err := unix.Read(fds[i], buf)
				if r > 0 {
					f.perConn[i] += int64(r)
					f.total.Add(int64(r))
					if r == len(buf) {
						continue
					}
					break
				}
				if err == unix.EAGAIN || err == unix.EINTR {
					break
				}
				f.failed.Store(fmt.Errorf("subscriber %d: connection closed (%v)", i, err))
				unix.EpollCtl(f.ep, unix.EPOLL_CTL_DEL, fds[i], nil)
				break
			}
		}
	}
}

// waitBytes waits until want bytes have arrived in all.
func (f *fanoutReader) waitBytes(want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for spins := 0; f.total.Load() < want; spins++ {
		if err, _ := f.failed.Load().(error); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d bytes arrived in %v", f.total.Load(), want, timeout)
		}
		if spins > 100 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return nil
}

func (f *fanoutReader) close() {
	f.stop.Store(true)
	<-f.done
	unix.Close(f.ep)
}
