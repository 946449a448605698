// Command libwsgate is wsgate's engine as a c-shared library for
// mod_wsgate: `go build -buildmode=c-shared -o libwsgate.so`. httpd's
// children load it after fork; mod_wsgate.c calls the exported functions
// below and provides the connection's I/O (see ../wsgate_module.h).
//
// Threads: WsgateServe runs on the httpd worker thread that serves the
// request, and only that goroutine calls the I/O functions, so httpd's
// filters, pool and mod_ssl state are only ever touched by that thread.
// Any other goroutine that sends queues its frame and writes to the
// connection's eventfd; the worker wakes from poll() and writes. Under
// the event MPM a connection is served by WsgateResume instead, on the
// worker the MPM picks, one at a time under the connection's lock
// (async.go).
package main

/*
#cgo CFLAGS: -I${SRCDIR}/.. -Wall -Wextra
#include <stdlib.h>
#include "io.h"
*/
import "C"

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/cgo"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/apps/cplugin"
	"github.com/wsgate/wsgate/apps/wsoverhttp"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/natsbus"
	"github.com/wsgate/wsgate/internal/bufpool"
	"github.com/wsgate/wsgate/internal/version"
	"github.com/wsgate/wsgate/websocket"
)

func main() {}

var (
	log *slog.Logger
	gw  *gateway.Gateway

	routesMu sync.Mutex
	routes   = map[string]*gateway.Route{}
)

// WsgateInit sets the engine up in a child. Its log goes through httpd's
// error log, at the module's LogLevel (see log.go).
//
//export WsgateInit
func WsgateInit(abi C.int, software *C.char, threaded C.int, shmBase unsafe.Pointer, shmSize C.long, loglevel C.int, logFn C.wsgate_log_fn, cluster *C.char) C.int {
	if abi != C.WSGATE_MODULE_ABI {
		fmt.Fprintf(os.Stderr, "mod_wsgate: libwsgate.so speaks interface %d, mod_wsgate.so %d: install both from one build\n", int(C.WSGATE_MODULE_ABI), int(abi))
		return 1
	}
	log = newHTTPDLogger(logFn, int(loglevel))
	var err error
	if gw, err = gateway.New(log); err != nil {
		return 1
	}
	if shmBase != nil && shmSize > shmHeader {
		shm = unsafe.Slice((*byte)(shmBase), int(shmSize))
		claimSlot()
		publish()
	}
	log.Info("engine loaded", "version", version.Get().String(), "server", C.GoString(software), "threaded", threaded != 0, "counters_slot", mySlot)
	if c := gostr(cluster); c != "" {
		joinCluster(c)
	}
	return 0
}

// joinCluster connects this child to the bus WsgateCluster names, so that
// rooms and broadcasts span httpd's children (and any daemon on the same
// NATS). It does not wait for NATS: a child whose NATS is down serves its
// own clients and joins when NATS comes. The configuration was checked
// when httpd started (WsgateCheck), so an error here is logged only.
func joinCluster(js string) {
	c, err := config.ParseCluster("WsgateCluster", []byte(js))
	if err != nil {
		log.Error("cluster: not joined; rooms and broadcasts stay in this child", "err", err)
		return
	}
	name := c.Name
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("mod_wsgate %s %d", host, os.Getpid())
	}
	b, err := natsbus.Connect(natsbus.Options{URLs: c.URLs, Name: name, Credentials: c.Credentials, NKey: c.NKey,
		User: c.User, Password: c.Password, Token: c.Token, CA: c.CA, Cert: c.Cert, Key: c.Key, Buffer: int(c.Buffer), Log: log})
	if err != nil {
		log.Error("cluster: not joined; rooms and broadcasts stay in this child", "err", err)
		return
	}
	if err := gw.UseBus(b, c.Prefix); err != nil {
		b.Close()
		log.Error("cluster: not joined; rooms and broadcasts stay in this child", "err", err)
		return
	}
	log.Info("cluster: rooms and broadcasts go through NATS", "servers", c.URLs, "node", name)
}

// WsgateMetrics renders the counters of every child: Prometheus's text
// format (0), mod_status's HTML section (1) or its ?auto lines (2). The
// caller frees the result.
//
//export WsgateMetrics
func WsgateMetrics(format C.int, n *C.long) (out *C.char) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic rendering metrics", "panic", v, "stack", string(debug.Stack()))
			out, *n = nil, 0
		}
	}()
	var b []byte
	switch format {
	case 0:
		b = prometheusText()
	case 1:
		b = statusText(false)
	default:
		b = statusText(true)
	}
	*n = C.long(len(b))
	return (*C.char)(C.CBytes(b))
}

// WsgateStopping closes every WebSocket of the child with 1001.
//
//export WsgateStopping
func WsgateStopping(graceful C.int) {
	if gw == nil {
		return
	}
	// The child may exit before its next once-a-second publication: what
	// it counted since the last one would be lost from the sums.
	publishNow()
	go func() {
		defer recoverLog("stopping")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		publishNow()
	}()
}

func recoverLog(where string) {
	if v := recover(); v != nil {
		log.Error("panic", "in", where, "panic", v, "stack", string(debug.Stack()))
	}
}

// route returns the gateway route for a section's directives, building it
// the first time. The section, the JSON and the plugin are the key: the
// routes are as many as the configuration's sections (times the URL
// prefixes a <Directory> is reached by), whatever URLs clients ask for.
// A route is built the way the daemon builds its routes (config's kinds,
// then the gateway's lifecycle: provision, validate, start).
func route(section, spec string, plugin unsafe.Pointer, pluginInit string) (*gateway.Route, error) {
	key := fmt.Sprintf("%s\x00%s\x00%p", section, spec, plugin)
	routesMu.Lock()
	defer routesMu.Unlock()
	if r, ok := routes[key]; ok {
		return r, nil
	}
	b, err := buildRoute(spec, plugin, pluginInit)
	if err != nil {
		return nil, err
	}
	r := b.Route
	// A section without a handler: the gateway answers its upgrades 500,
	// after the 400 checks, and logs apache-websocket's line for each,
	// naming the path asked for and the client.
	if err := gw.StartRoute(context.Background(), r); err != nil {
		return nil, err
	}
	routes[key] = r
	return r, nil
}

// built is a section's route, not yet provisioned, and the route key of
// its application.
type built struct {
	*gateway.Route
	Kind string
}

// buildRoute turns a section's route JSON into a gateway route. A plugin
// httpd loaded at configuration time (a pointer) takes the place of the
// application.
func buildRoute(spec string, plugin unsafe.Pointer, pluginInit string) (built, error) {
	cr, err := config.ParseRoute("httpd.conf", []byte(spec))
	if err != nil {
		return built{}, err
	}
	r := cr.GatewayRoute()
	if plugin != nil {
		if r.Handler, err = cplugin.FromPointer(plugin, pluginInit); err != nil {
			return built{}, err
		}
		r.App = "plugin " + pluginInit
	}
	return built{r, cr.Kind}, nil
}

// WsgateCheck validates the routes of httpd's configuration sections, for
// mod_wsgate's check_config hook: the shim runs it in a short-lived child
// it forks for the purpose, because the Go runtime must never be loaded
// into httpd's parent process. in is a JSON array of {"section": "file:line",
// "route": {...}}; each route goes through config's kinds and the
// gateway's provision and validate steps (no I/O), then is stopped. The
// result, which the caller frees, has a line "section<TAB>key<TAB>message"
// per problem (the key is the route key at fault, such as "app" or
// "docroot.root", or empty); an empty string means every route is usable.
//
//export WsgateCheck
func WsgateCheck(abi C.int, cin *C.char) *C.char {
	if abi != C.WSGATE_MODULE_ABI {
		return C.CString(fmt.Sprintf("\t\tlibwsgate.so speaks interface %d, mod_wsgate.so %d: install both from one build\n", int(C.WSGATE_MODULE_ABI), int(abi)))
	}
	var out strings.Builder
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(&out, "\t\tchecking the configuration panicked: %v\n", v)
		}
	}()
	var in struct {
		Sections []struct {
			Section string          `json:"section"`
			Route   json.RawMessage `json:"route"`
		} `json:"sections"`
		Cluster json.RawMessage `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(C.GoString(cin)), &in); err != nil {
		return C.CString("\t\t" + err.Error() + "\n")
	}
	sections := in.Sections
	if len(in.Cluster) > 0 && string(in.Cluster) != "null" {
		if _, err := config.ParseCluster("WsgateCluster", in.Cluster); err != nil {
			for _, e := range config.Errors(err) {
				fmt.Fprintf(&out, "\t\tWsgateCluster: %s\n", strings.ReplaceAll(e.Error(), "\n", " "))
			}
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, sec := range sections {
		r, err := buildRoute(string(sec.Route), nil, "")
		if err == nil {
			var g *gateway.Gateway
			if g, err = gateway.New(quiet, r.Route); err == nil {
				g.Stop(context.Background())
			}
			if b, ok := r.Route.Handler.(gateway.Broadcaster); ok && b.Broadcasts() {
				fmt.Fprintf(&out, "!broadcast\t%s\t%s\n", sec.Section, r.Route.App)
			}
		}
		for _, e := range config.Errors(err) {
			key, msg := "", e.Error()
			var ce *config.Error
			var re *gateway.RouteError
			switch {
			case errors.As(e, &ce):
				key, msg = ce.Key, ce.Msg
			case errors.As(e, &re):
				key, msg = r.Kind, re.Err.Error()
			}
			fmt.Fprintf(&out, "%s\t%s\t%s\n", sec.Section, key, strings.ReplaceAll(msg, "\n", " "))
		}
	}
	return C.CString(out.String())
}

func gostr(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// WsgateHandle runs the opening handshake for a request.
//
//export WsgateHandle
func WsgateHandle(req *C.wsgate_request, resp *C.wsgate_response) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic in the handshake", "panic", v, "stack", string(debug.Stack()))
			resp.status = http.StatusInternalServerError
		}
	}()
	h := http.Header{}
	n := int(req.nheaders)
	names := unsafe.Slice(req.header_names, n)
	values := unsafe.Slice(req.header_values, n)
	for i := range n {
		h.Add(C.GoString(names[i]), C.GoString(values[i]))
	}
	if !websocket.IsUpgrade(h) {
		resp.status = 0
		return
	}
	rt, err := route(gostr(req.section), gostr(req.route), req.plugin, gostr(req.plugin_init))
	if err != nil {
		log.Error("this location's WebSocket configuration is unusable", "path", gostr(req.path), "err", err)
		resp.status = http.StatusInternalServerError
		return
	}
	// WebSocketEventHandler's subrequests: inline while the handshake runs
	// here, on the worker thread; then through the worker's I/O loop.
	ex := &ownerExec{r: req.request_rec, fn: req.subrequest, free: req.free_subresp, direct: true}
	gr := &gateway.Request{Method: gostr(req.method), ProtoMajor: int(req.proto_major), ProtoMinor: int(req.proto_minor),
		Path: gostr(req.path), RawQuery: gostr(req.query), Host: gostr(req.host),
		RemoteAddr: gostr(req.remote), SelfOrigin: gostr(req.self_origin),
		Extra: map[string]any{cplugin.RequestKey: req.request_rec, wsoverhttp.PosterKey: ex}}
	gr.SetHeader(h)
	if u := gostr(req.user); u != "" {
		// httpd's own auth modules decided (Require, AuthType): a
		// mod_wsgate route has no authenticator of its own.
		gr.Identity = &gateway.Identity{User: u, Method: gostr(req.auth_type)}
	}
	if req.tls != 0 {
		gr.TLS = &tls.ConnectionState{}
	}
	p, herr := gw.Accept(context.Background(), rt, gr)
	ex.mu.Lock()
	ex.direct = false
	ex.mu.Unlock()
	if herr != nil {
		ex.close()
	}
	if herr == nil && p.HandsOff() {
		// httpd owns the client's socket (and mod_ssl its session): it
		// cannot be handed to a producer. The shim's directives offer no
		// direct mode; this guards a route that would.
		p.Abandon()
		log.Error("mode: direct is not available in mod_wsgate", "path", gostr(req.path))
		resp.status = http.StatusInternalServerError
		return
	}
	var out http.Header
	if herr != nil {
		resp.status = C.int(herr.Status)
		out = herr.Header
	} else {
		resp.status = http.StatusSwitchingProtocols
		out = p.Header()
		resp.conn = C.uintptr_t(cgo.NewHandle(p))
	}
	setHeaders(resp, out)
}

func setHeaders(resp *C.wsgate_response, h http.Header) {
	count := 0
	for _, vs := range h {
		count += len(vs)
	}
	if count == 0 {
		return
	}
	size := C.size_t(count) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
	resp.header_names = (**C.char)(C.malloc(size))
	resp.header_values = (**C.char)(C.malloc(size))
	names := unsafe.Slice(resp.header_names, count)
	values := unsafe.Slice(resp.header_values, count)
	i := 0
	for k, vs := range h {
		k = websocket.HeaderName(k) // httpd writes names as given
		for _, v := range vs {
			names[i], values[i] = C.CString(k), C.CString(v)
			i++
		}
	}
	resp.nheaders = C.int(count)
}

// WsgateFreeResponse frees what WsgateHandle allocated.
//
//export WsgateFreeResponse
func WsgateFreeResponse(resp *C.wsgate_response) {
	n := int(resp.nheaders)
	if n > 0 {
		for _, s := range unsafe.Slice(resp.header_names, n) {
			C.free(unsafe.Pointer(s))
		}
		for _, s := range unsafe.Slice(resp.header_values, n) {
			C.free(unsafe.Pointer(s))
		}
		C.free(unsafe.Pointer(resp.header_names))
		C.free(unsafe.Pointer(resp.header_values))
	}
	resp.nheaders, resp.header_names, resp.header_values = 0, nil, nil
}

// transport is the engine's view of an httpd connection: a Waker, so the
// engine never writes from a sending goroutine. Every method that touches
// httpd (ReadTo, WriteBuffers, Linger) runs on the worker thread inside
// WsgateServe; Wake and Close only write the eventfd.
type transport struct {
	io      *C.wsgate_io
	efd     int
	conn    *gateway.Conn
	aborted atomic.Bool
	exec    *ownerExec // the connection's subrequests, run between reads
	// Released-worker mode (async.go); gone: httpd has closed the
	// connection, and no call may touch it.
	async *asyncConn
	gone  atomic.Bool
}

func (t *transport) WriteBuffers(bufs [][]byte) error {
	if t.gone.Load() {
		return io.ErrClosedPipe
	}
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		// Go memory for the duration of the call: ap_fwrite copies what it
		// does not write at once (transient buckets are set aside).
		if C.wsgate_io_write(t.io, (*C.char)(unsafe.Pointer(&b[0])), C.long(len(b))) != 0 {
			return errors.New("write to the client failed")
		}
	}
	if C.wsgate_io_flush(t.io) != 0 {
		return errors.New("flush to the client failed")
	}
	return nil
}

// Wake interrupts the worker's poll.
func (t *transport) Wake() {
	if t.async != nil {
		t.async.wake()
		return
	}
	var one = [8]byte{1}
	unix.Write(t.efd, one[:])
}

// Close asks the worker to end the connection; it may be called from any
// goroutine, so it touches nothing of httpd's.
func (t *transport) Close() error {
	t.aborted.Store(true)
	t.Wake()
	return nil
}

const (
	readSize     = 32 << 10
	pollInterval = time.Second // how often a quiet connection checks the MPM's state
)

// WsgateServe serves an upgraded connection on the calling (worker)
// thread until it ends.
//
//export WsgateServe
func WsgateServe(h C.uintptr_t, cio *C.wsgate_io) {
	t, p := newTransport(h, cio)
	if t == nil {
		cgo.Handle(h).Delete()
		p.Abandon()
		return
	}
	defer unix.Close(t.efd)
	if t.exec != nil {
		defer t.exec.close()
	}
	p.Serve(t)
}

// newTransport makes the transport of the connection WsgateHandle handed
// the shim as h, over cio, and releases the handle; on failure (no
// eventfd) it returns a nil transport and keeps the handle.
func newTransport(h C.uintptr_t, cio *C.wsgate_io) (*transport, *gateway.Pending) {
	handle := cgo.Handle(h)
	p := handle.Value().(*gateway.Pending)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		log.Error("eventfd", "err", err)
		return nil, p
	}
	handle.Delete()
	t := &transport{io: cio, efd: efd, conn: p.Conn}
	if ex, ok := p.Conn.Request().Extra[wsoverhttp.PosterKey].(*ownerExec); ok {
		t.exec = ex
		ex.mu.Lock()
		ex.wake = t.Wake
		ex.mu.Unlock()
	}
	return t, p
}

// ReadTo is the worker's loop: write what other goroutines queued (an
// empty Write), read until the filters have nothing more (which also
// drains what mod_ssl has decrypted, which poll() would not announce),
// then poll the socket and the eventfd. It returns only when the
// connection's reading is over.
func (t *transport) ReadTo(w io.Writer) error {
	if t.async != nil {
		return t.async.readTo(w)
	}
	fds := []unix.PollFd{{Fd: int32(t.io.fd), Events: unix.POLLIN}, {Fd: int32(t.efd), Events: unix.POLLIN}}
	var drainBuf [8]byte
	for {
		if t.exec != nil {
			t.exec.runPending()
		}
		if _, err := t.serveOnce(w); err != nil {
			return err
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, int(pollInterval/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if fds[1].Revents != 0 {
			unix.Read(t.efd, drainBuf[:])
		}
	}
}

// serveOnce is one turn of the worker's loop: write what other goroutines
// queued (an empty Write), read until the filters have nothing more
// (which also drains what mod_ssl has decrypted, which poll() would not
// announce), and close the connection if the MPM is stopping. read says
// whether any bytes came.
func (t *transport) serveOnce(w io.Writer) (read bool, err error) {
	if _, err := t.flushOnce(w); err != nil {
		return false, err
	}
	for {
		buf := bufpool.Get(readSize)
		n := C.wsgate_io_read(t.io, (*C.char)(unsafe.Pointer(unsafe.SliceData((*buf)[:1]))), C.long(cap(*buf)))
		if n > 0 {
			_, err := w.Write((*buf)[:n])
			bufpool.Put(buf)
			if err != nil {
				return true, err
			}
			read = true
			continue
		}
		bufpool.Put(buf)
		if n < 0 {
			return read, io.EOF
		}
		break
	}
	t.checkStopping()
	return read, nil
}

// flushOnce writes what other goroutines queued (an empty Write) and
// closes the connection if the MPM is stopping, without reading.
func (t *transport) flushOnce(w io.Writer) (bool, error) {
	if _, err := w.Write(nil); err != nil {
		return false, err
	}
	if t.aborted.Load() {
		return false, io.ErrClosedPipe
	}
	t.checkStopping()
	return false, nil
}

func (t *transport) checkStopping() {
	if C.wsgate_io_stopping(t.io) != 0 {
		// Under prefork the child_stopping hook may not reach a busy
		// worker; closing twice does nothing.
		t.conn.CloseFor(gateway.CauseShutdown, websocket.StatusGoingAway, "server shutting down")
	}
}

// Linger half-closes the connection, then reads and discards the client's
// input until it closes or the timeout passes, after this side failed the
// connection: closing with unread input would reset it and could destroy
// the close frame at the client.
func (t *transport) Linger(timeout time.Duration) {
	if t.gone.Load() {
		return
	}
	C.wsgate_io_shutdown_write(t.io)
	deadline := time.Now().Add(timeout)
	fds := []unix.PollFd{{Fd: int32(t.io.fd), Events: unix.POLLIN}}
	buf := bufpool.Get(4096)
	defer bufpool.Put(buf)
	for time.Now().Before(deadline) {
		n := C.wsgate_io_read(t.io, (*C.char)(unsafe.Pointer(unsafe.SliceData((*buf)[:1]))), C.long(cap(*buf)))
		if n < 0 {
			return
		}
		if n == 0 {
			left := time.Until(deadline)
			unix.Poll(fds, int(max(left, time.Millisecond)/time.Millisecond))
		}
	}
}
