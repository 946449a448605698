package main

import (
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpServer is the physical limit: bytes in, the same bytes out, over
// edge-free level-triggered epoll with one loop per P, no framing and no
// handshake. It echoes the client's frames as they are (masked), which the
// load generator reads like any frame.
func tcpServer(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	n := runtime.GOMAXPROCS(0)
	loops := make([]int, n)
	for i := range loops {
		if loops[i], err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			return err
		}
		go tcpLoop(loops[i])
	}
	for i := 0; ; i++ {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			continue
		}
		fd := int(f.Fd())
		// File's descriptor is a dup we own; keep it open past f's finalizer.
		nfd, err := unix.Dup(fd)
		f.Close()
		if err != nil {
			continue
		}
		unix.SetNonblock(nfd, true)
		unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(nfd)}
		unix.EpollCtl(loops[i%n], unix.EPOLL_CTL_ADD, nfd, &ev)
	}
}

func tcpLoop(ep int) {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 256<<10)
	for {
		k, err := unix.EpollWait(ep, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:k] {
			fd := int(ev.Fd)
			r, err := unix.Read(fd, buf)
			if r <= 0 {
				if err == unix.EAGAIN {
					continue
				}
				unix.Close(fd)
				continue
			}
			for off := 0; off < r; {
				w, err := unix.Write(fd, buf[off:r])
				if err == unix.EAGAIN {
					// A full socket: wait until it drains (the client
					// reads every echo before it sends again).
					pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
					unix.Poll(pfd, 1000)
					continue
				}
				if err != nil {
					unix.Close(fd)
					break
				}
				off += w
			}
		}
	}
}
