package main

/*
#include "io.h"
*/
import "C"

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/websocket"
)

// Released workers (event MPM, httpd 2.4.63 and later): a WebSocket does
// not keep its worker thread while it is idle. After the 101 the shim
// hands the connection to its process_connection hook, which calls
// WsgateResume whenever the MPM finds the socket readable; when the
// engine has had nothing to do for asyncLinger, WsgateResume returns
// asyncPark and the shim returns CONN_STATE_ASYNC_WAITIO, giving the
// worker back while the MPM watches the socket.
//
// The MPM watches only the socket, so output for a parked connection
// (a broadcast, a producer's message, a ping) comes through a timed
// callback with no delay, which httpd runs on a worker: Wake schedules
// one, and WsgateResume(asyncWake) flushes the queue there.
//
// The single-owner rule holds by mutual exclusion: every entry that
// touches httpd (a resumption, a timed callback) takes the connection's
// own lock, and so does the shim's pre_close_connection hook (WsgateGone)
// before httpd's lingering close flushes the filters. A timed callback
// that finds the connection gone or owned by a resumption does nothing.

// What WsgateResume tells the shim.
const (
	asyncPark  = 0 // wait for the socket (CONN_STATE_ASYNC_WAITIO)
	asyncEnded = 1 // the WebSocket is over: close the connection
	asyncNone  = 2 // a timed callback with nothing to do
)

// Why WsgateResume is called.
const (
	resumeReadable = 0 // from process_connection: the socket is readable (or the first time)
	resumeWake     = 1 // from a timed callback: output is queued
)

// asyncLinger is how long a resumed connection keeps its worker polling
// after the last bytes it read: a connection exchanging messages stays
// on its worker, one that went quiet gives it back soon. A resumption
// for output only parks as soon as the queue is written.
const asyncLinger = 20 * time.Millisecond

type asyncConn struct {
	t  *transport
	id uintptr

	mu    sync.Mutex // held by whoever touches httpd for this connection
	ended bool       // the engine is done with it
	// httpd closing it (pre_close) or having freed it is t.gone.

	owned     atomic.Bool // a worker is inside Serve for it
	scheduled atomic.Bool // a timed callback is pending
	wakeOnly  bool        // this resumption is for output only
	suspended bool        // the last ReadTo parked the connection
	sched     C.wsgate_schedule_fn
}

var (
	asyncMu    sync.Mutex
	asyncConns = map[uintptr]*asyncConn{}
	asyncNext  uintptr
)

func asyncLookup(id C.uintptr_t) *asyncConn {
	asyncMu.Lock()
	defer asyncMu.Unlock()
	return asyncConns[uintptr(id)]
}

// WsgateServeAsync takes an upgraded connection for released-worker
// serving. io lives in the connection's pool; sched schedules a timed
// callback for an id. It returns the connection's id, or 0 when this
// connection must be served the pinned way (WsgateServe).
//
//export WsgateServeAsync
func WsgateServeAsync(h C.uintptr_t, cio *C.wsgate_io, sched C.wsgate_schedule_fn, timeoutMs C.long) C.uintptr_t {
	t, p := newTransport(h, cio)
	if t == nil {
		return 0
	}
	if t.exec != nil {
		// The request is gone, and with it any subrequest: none may wait
		// for an owner that will never run it (the shim keeps routes that
		// make them pinned).
		t.exec.close()
		t.exec = nil
	}
	// httpd closes a connection it has waited for longer than Timeout:
	// pings within half of it keep a quiet client's connection open (its
	// pong is activity).
	p.Conn.Engine().PingWithin(time.Duration(timeoutMs) * time.Millisecond / 2)
	a := &asyncConn{t: t, sched: sched}
	t.async = a
	asyncMu.Lock()
	asyncNext++
	a.id = asyncNext
	asyncConns[a.id] = a
	asyncMu.Unlock()
	return C.uintptr_t(a.id)
}

// WsgateResume serves the connection on the calling worker until it has
// been quiet for asyncLinger (or, for a wake, until its queue is written),
// and says what the shim should do with it.
//
//export WsgateResume
func WsgateResume(id C.uintptr_t, why C.int) C.int {
	a := asyncLookup(id)
	if a == nil {
		if why == resumeWake {
			return asyncNone
		}
		return asyncEnded
	}
	if why == resumeWake {
		a.scheduled.Store(false)
		// A resumption serving the socket writes the queue itself.
		if !a.mu.TryLock() {
			return asyncNone
		}
	} else {
		a.mu.Lock()
	}
	defer a.mu.Unlock()
	if a.t.gone.Load() {
		return asyncNone
	}
	if a.ended {
		return asyncEnded
	}
	a.wakeOnly = why == resumeWake
	a.suspended = false
	if !a.wakeOnly {
		C.wsgate_io_trim(a.t.io, 1)
	}
	a.owned.Store(true)
	a.t.conn.Engine().Serve(a.t)
	a.owned.Store(false)
	if !a.suspended {
		a.ended = true
	}
	if a.ended {
		if why == resumeWake {
			// httpd still watches the socket: shutting it down makes it
			// readable, and the resumption that follows closes it.
			C.wsgate_io_shutdown_write(a.t.io)
		}
		return asyncEnded
	}
	if why == resumeReadable {
		C.wsgate_io_trim(a.t.io, 0)
	}
	// A Wake that saw the connection owned wrote the eventfd and may have
	// come after the last poll: the queue would wait for the next event.
	var b [8]byte
	if n, _ := unix.Read(a.t.efd, b[:]); n > 0 {
		a.schedule()
	}
	return asyncPark
}

// WsgateGone tells the engine that httpd is closing the connection (its
// lingering close is about to flush the filters) or has freed it: no
// timed callback may touch it any more.
//
//export WsgateGone
func WsgateGone(id C.uintptr_t) {
	a := asyncLookup(id)
	if a == nil {
		return
	}
	a.mu.Lock()
	a.t.gone.Store(true)
	ended := a.ended
	a.mu.Unlock()
	asyncMu.Lock()
	delete(asyncConns, a.id)
	asyncMu.Unlock()
	if !ended {
		// The client went away, or httpd timed the connection out. No
		// worker will serve it again: the engine's teardown runs here,
		// over a transport whose every call now fails without touching
		// httpd.
		go func() {
			defer recoverLog("async teardown")
			a.t.conn.Engine().Serve(a.t)
			unix.Close(a.t.efd)
		}()
		return
	}
	unix.Close(a.t.efd)
}

func (a *asyncConn) schedule() {
	if a.scheduled.Swap(true) {
		return
	}
	C.wsgate_call_schedule(a.sched, C.uintptr_t(a.id))
}

// wake is the transport's Wake in async mode: the owner polls the eventfd;
// a parked connection needs a timed callback.
func (a *asyncConn) wake() {
	if a.t.gone.Load() {
		return
	}
	var one = [8]byte{1}
	unix.Write(a.t.efd, one[:])
	if !a.owned.Load() {
		a.schedule()
	}
}

// readTo is the transport's ReadTo in async mode: the pinned loop, but it
// returns ErrSuspended (parking the connection) when nothing has come for
// asyncLinger, or at once when this resumption is for output only.
//
// A resumption for output only (a timed callback) writes and never reads.
// The MPM renews a parked connection's deadline (Timeout) only when
// process_connection returns CONN_STATE_ASYNC_WAITIO, and it calls that
// hook only when it sees the socket readable. A keepalive ping is written
// from a timed callback; when the pong came back while the callback was
// still there and the callback read it, the socket was never readable
// for the MPM, the deadline stayed where the last park put it, and the
// MPM closed a client that answered every ping, Timeout after it last
// sent something of its own (issue 23). Left in the socket, the pong
// wakes the MPM, which resumes the connection and renews the deadline.
// mod_ssl holds nothing decrypted between resumptions: the one that
// parked read until the filters had nothing more.
func (a *asyncConn) readTo(w io.Writer) error {
	t := a.t
	if t.gone.Load() {
		return io.ErrClosedPipe
	}
	if a.wakeOnly {
		if _, err := t.flushOnce(w); err != nil {
			return err
		}
		a.suspended = true
		a.t.conn.Engine().Quiet()
		return websocket.ErrSuspended
	}
	fds := []unix.PollFd{{Fd: int32(t.io.fd), Events: unix.POLLIN}, {Fd: int32(t.efd), Events: unix.POLLIN}}
	var drainBuf [8]byte
	for {
		if _, err := t.serveOnce(w); err != nil {
			return err
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		n, err := unix.Poll(fds, int(asyncLinger/time.Millisecond))
		if err != nil && err != unix.EINTR {
			return err
		}
		if fds[1].Revents != 0 {
			unix.Read(t.efd, drainBuf[:])
		}
		if n == 0 && err == nil {
			// Quiet: write what is queued, then give the worker back.
			if _, err := w.Write(nil); err != nil {
				return err
			}
			a.suspended = true
			a.t.conn.Engine().Quiet()
			return websocket.ErrSuspended
		}
	}
}
