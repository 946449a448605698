package main

/*
#include <stdlib.h>
#include "io.h"
*/
import "C"

import (
	"context"
	"errors"
	"net/http"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/wsgate/wsgate/apps/wsoverhttp"
	pubapi "github.com/wsgate/wsgate/gateway/publish"
)

func init() {
	// WebSocketEventHandler's subrequests exist here.
	wsoverhttp.InHTTPD = true
}

// ownerExec makes a WebSocket's subrequests (WebSocketEventHandler) on
// the worker thread that owns its request: inline during the handshake,
// whose OnOpen runs on that thread; afterwards as jobs that the worker's
// I/O loop runs between reads (transport.ReadTo), woken by the eventfd.
// It is the connection's wsoverhttp.Poster.
type ownerExec struct {
	r    unsafe.Pointer // request_rec
	fn   C.wsgate_subrequest_fn
	free C.wsgate_free_subresp_fn

	mu     sync.Mutex
	direct bool // in the handshake, on the owner thread
	jobs   []*subJob
	wake   func()
	closed bool
}

// subJob is one subrequest waiting for the owner thread.
type subJob struct {
	req  *wsoverhttp.Request
	max  int64
	done chan struct{}
	resp *wsoverhttp.Response
	err  error

	mu        sync.Mutex
	abandoned bool // its caller stopped waiting: not run, or its answer dropped
}

var errConnEnded = errors.New("the WebSocket has ended")

// Post implements wsoverhttp.Poster.
func (x *ownerExec) Post(ctx context.Context, r *wsoverhttp.Request, max int64) (*wsoverhttp.Response, error) {
	j := &subJob{req: r, max: max, done: make(chan struct{})}
	x.mu.Lock()
	if x.direct {
		x.mu.Unlock()
		x.run(j)
		return j.resp, j.err
	}
	if x.closed {
		x.mu.Unlock()
		return nil, errConnEnded
	}
	x.jobs = append(x.jobs, j)
	wake := x.wake
	x.mu.Unlock()
	if wake != nil {
		wake()
	}
	select {
	case <-j.done:
		return j.resp, j.err
	case <-ctx.Done():
		j.mu.Lock()
		j.abandoned = true
		j.mu.Unlock()
		return nil, ctx.Err()
	}
}

// runPending runs the queued subrequests: on the owner thread only.
func (x *ownerExec) runPending() {
	x.mu.Lock()
	jobs := x.jobs
	x.jobs = nil
	x.mu.Unlock()
	for _, j := range jobs {
		j.mu.Lock()
		skip := j.abandoned
		j.mu.Unlock()
		if !skip {
			x.run(j)
		}
		close(j.done)
	}
}

// close fails what waits and what comes: the worker thread is leaving.
func (x *ownerExec) close() {
	x.mu.Lock()
	x.closed, x.direct = true, false
	jobs := x.jobs
	x.jobs = nil
	x.mu.Unlock()
	for _, j := range jobs {
		j.err = errConnEnded
		close(j.done)
	}
}

// run makes one subrequest through the shim, on the calling (owner)
// thread. Everything handed to C is C memory (cgo's pointer rules).
func (x *ownerExec) run(j *subJob) {
	var in C.wsgate_subreq
	var cfree []unsafe.Pointer
	cstr := func(s string) *C.char {
		p := C.CString(s)
		cfree = append(cfree, unsafe.Pointer(p))
		return p
	}
	defer func() {
		for _, p := range cfree {
			C.free(p)
		}
	}()
	r := j.req
	in.target = cstr(r.Target)
	if len(r.Body) > 0 {
		in.body = (*C.char)(C.CBytes(r.Body))
		cfree = append(cfree, unsafe.Pointer(in.body))
	}
	in.len = C.long(len(r.Body))
	in.max_body = C.long(j.max)
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	if n > 0 {
		size := C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
		names, values := (**C.char)(C.malloc(size)), (**C.char)(C.malloc(size))
		cfree = append(cfree, unsafe.Pointer(names), unsafe.Pointer(values))
		ns, vs := unsafe.Slice(names, n), unsafe.Slice(values, n)
		i := 0
		for k, hv := range r.Header {
			for _, v := range hv {
				ns[i], vs[i] = cstr(k), cstr(v)
				i++
			}
		}
		in.nheaders, in.header_names, in.header_values = C.int(n), names, values
	}
	var out C.wsgate_subresp
	C.wsgate_call_subrequest(x.fn, x.r, &in, &out)
	defer C.wsgate_call_free_subresp(x.free, &out)
	if out.too_large != 0 {
		j.err = errors.New("the subrequest's answer is over the size limit")
		return
	}
	resp := &wsoverhttp.Response{Status: int(out.status), Header: http.Header{}}
	if out.len > 0 {
		resp.Body = C.GoBytes(unsafe.Pointer(out.body), C.int(out.len))
	}
	if k := int(out.nheaders); k > 0 {
		ns, vs := unsafe.Slice(out.header_names, k), unsafe.Slice(out.header_values, k)
		for i := range k {
			resp.Header.Add(C.GoString(ns[i]), C.GoString(vs[i]))
		}
	}
	j.resp = resp
}

// WsgatePublish serves SetHandler wsgate-publish: Pushpin's publish API.
//
//export WsgatePublish
func WsgatePublish(body *C.char, n C.long, answer **C.char) (status C.int) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic", "in", "publish", "panic", v, "stack", string(debug.Stack()))
			status = http.StatusInternalServerError
		}
	}()
	st, msg := pubapi.Apply(C.GoBytes(unsafe.Pointer(body), C.int(n)), gw.Publish)
	*answer = C.CString(msg)
	return C.int(st)
}
