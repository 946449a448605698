// Package cplugin runs apache-websocket plugins (C shared objects written
// against websocket_plugin.h) as gateway applications, in mod_wsgate and
// in the standalone daemon alike.
//
// Threads: the plugin's on_connect and on_message run on the goroutine
// that serves the connection (in mod_wsgate, the httpd worker thread, as
// in mod_websocket). Its send and close may be called from any thread,
// including threads the plugin starts itself; they queue the frame and
// return without waiting for the network.
//
// APR and request(): in httpd a plugin lives among httpd's libraries and
// its request_rec. In the daemon, request.c loads APR globally before the
// first plugin and gives every connection a request_rec of its own (see
// that file for what it holds), when the build had httpd's headers.
package cplugin

/*
#cgo CFLAGS: -I${SRCDIR}/include -I/usr/include/apache2 -I/usr/include/apr-1.0 -Wall -Wextra
#cgo LDFLAGS: -ldl -lpthread
#include <dlfcn.h>
#include <stdlib.h>
#include "cplugin.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/cgo"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Plugin is an apache-websocket plugin as a gateway.Handler.
type Plugin struct {
	p       *C.WebSocketPlugin
	lib     unsafe.Pointer // dlopen handle; nil when loaded by someone else
	library string         // for New: loaded by Provision
	name    string
}

// New returns the plugin in library, initialized by the function named
// init, to be loaded by Provision.
func New(library, init string) *Plugin { return &Plugin{library: library, name: init} }

// Provision loads the library and calls its initialization function, as
// mod_websocket does when httpd reads its configuration (so `wsgate check`,
// like `apachectl configtest`, reports a plugin that will not load). The
// function returns a static structure and starts nothing, by the plugin
// ABI's contract.
func (pl *Plugin) Provision(ctx gateway.AppContext) error {
	if pl.p != nil {
		return nil
	}
	aprOnce.Do(func() {
		if ctx.Logger != nil {
			ctx.Logger.Info("C plugins: " + C.GoString(C.ws_apr_load()))
		}
	})
	loaded, err := Load(pl.library, pl.name)
	if err != nil {
		return err
	}
	pl.p, pl.lib = loaded.p, loaded.lib
	return nil
}

// Load opens a plugin library and calls its initialization function, with
// apache-websocket's checks and error messages.
func Load(library, initFunc string) (*Plugin, error) {
	clib, cinit := C.CString(library), C.CString(initFunc)
	defer C.free(unsafe.Pointer(clib))
	defer C.free(unsafe.Pointer(cinit))
	// APR first, globally, so that a plugin's APR symbols resolve as they
	// do in httpd.
	C.ws_apr_load()
	var cerr *C.char
	h := C.ws_dlopen(clib, &cerr)
	if h == nil {
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		//lint:ignore ST1005 mod_websocket's message, word for word: configurations and scripts match it
		return nil, fmt.Errorf("Could not load WebSocketHandler %s: %s%s", library, msg, loadHint(msg))
	}
	sym := C.dlsym(h, cinit)
	if sym == nil {
		C.dlclose(h)
		//lint:ignore ST1005 mod_websocket's message, word for word
		return nil, fmt.Errorf("Could not find initialization function \"%s\" for WebSocketHandler %s", initFunc, library)
	}
	pl, err := FromPointer(unsafe.Pointer(C.call_init(sym)), initFunc)
	if err != nil {
		C.dlclose(h)
		return nil, err
	}
	pl.lib = h
	return pl, nil
}

// FromPointer wraps a WebSocketPlugin that was loaded and initialized
// elsewhere (by mod_wsgate, in httpd's configuration phase), checking it
// as apache-websocket does.
func FromPointer(p unsafe.Pointer, initFunc string) (*Plugin, error) {
	cp := (*C.WebSocketPlugin)(p)
	var problem string
	switch {
	case cp == nil:
		problem = "returned NULL"
	case C.plugin_version(cp) != C.WEBSOCKET_PLUGIN_VERSION_0:
		problem = fmt.Sprintf("unsupported plugin version %d", C.plugin_version(cp))
	case C.plugin_size_ok(cp) == 0:
		problem = "invalid plugin size; check plugin version and compiler"
	case C.plugin_has_on_message(cp) == 0:
		problem = "on_message handler is NULL"
	}
	if problem != "" {
		//lint:ignore ST1005 mod_websocket's message, word for word
		return nil, fmt.Errorf("Invalid response from WebSocketHandler initialization function %s (%s)", initFunc, problem)
	}
	return &Plugin{p: cp, name: initFunc}, nil
}

var aprOnce sync.Once

// RequestAvailable says whether plugins loaded by this package get a
// request_rec of their own and APR: the build had httpd's headers and
// libapr-1 can be loaded.
func RequestAvailable() bool { return C.ws_apr_ready() != 0 }

// loadHint explains an undefined symbol that only httpd provides: httpd's
// own functions (ap_*), or APR's when APR could not be loaded.
func loadHint(dlerr string) string {
	_, sym, ok := strings.Cut(dlerr, "undefined symbol: ")
	switch {
	case !ok:
		return ""
	case strings.HasPrefix(sym, "ap_"):
		return " (the plugin calls httpd's own functions, which exist only inside httpd: serve it with mod_wsgate)"
	case strings.HasPrefix(sym, "apr_") || strings.HasPrefix(sym, "apu_"):
		if C.ws_apr_ready() == 0 {
			return " (" + C.GoString(C.ws_apr_load()) + ")"
		}
	}
	return ""
}

// Stop calls the plugin's destroy and unloads the library, when this
// package loaded it. A plugin httpd loaded (FromPointer) is httpd's: its
// configuration pool calls destroy, and calling it here too would destroy
// it twice.
func (pl *Plugin) Stop(context.Context) error {
	if pl.lib == nil {
		return nil
	}
	C.call_destroy(pl.p)
	C.dlclose(pl.lib)
	pl.lib, pl.p = nil, nil
	return nil
}

// conn is one connection as the plugin sees it.
type conn struct {
	gc      *gateway.Conn
	server  *C.WebSocketServer
	handle  cgo.Handle
	private unsafe.Pointer
	closed  atomic.Bool

	// req is the request_rec this package built (daemon), freed after
	// on_disconnect; nil in mod_wsgate, where httpd's is used.
	req unsafe.Pointer

	mu      sync.Mutex
	cstrs   map[string]*C.char // header values handed to the plugin
	protos  []*C.char
	started bool // past on_connect: headers and subprotocol are fixed
}

// RequestKey is where a front door puts httpd's request_rec (an
// unsafe.Pointer in the gateway.Request's Extra) for the plugin's
// request().
const RequestKey = "cplugin.request_rec"

// OnOpen runs the plugin's on_connect; NULL refuses with 403.
func (pl *Plugin) OnOpen(ctx context.Context, c *gateway.Conn) error {
	cc := &conn{gc: c, cstrs: map[string]*C.char{}}
	cc.handle = cgo.NewHandle(cc)
	r, _ := c.Request().Extra[RequestKey].(unsafe.Pointer)
	if r == nil {
		cc.req = newRequest(c)
		r = cc.req
	}
	cc.server = C.ws_new_server(C.uintptr_t(cc.handle), r)
	if cc.server == nil {
		cc.free()
		return errors.New("out of memory")
	}
	c.SetState(cc)
	if C.has_on_connect(pl.p) != 0 {
		cc.private = C.call_on_connect(pl.p, cc.server)
		if cc.private == nil {
			cc.closed.Store(true)
			cc.free()
			return gateway.Refuse(http.StatusForbidden, "plugin "+pl.name+" refused the connection")
		}
	}
	if cc.req != nil {
		// What on_connect put in r->headers_out goes into the 101, as in
		// httpd.
		var names, values **C.char
		n := int(C.ws_request_headers_out(cc.req, &names, &values))
		if n > 0 {
			ns, vs := unsafe.Slice(names, n), unsafe.Slice(values, n)
			for i := range n {
				k, v := C.GoString(ns[i]), C.GoString(vs[i])
				if http.CanonicalHeaderKey(k) == "Sec-Websocket-Protocol" {
					c.SetSubprotocol(v)
					continue
				}
				c.ResponseHeader().Add(k, v)
			}
		}
	}
	cc.mu.Lock()
	cc.started = true
	cc.mu.Unlock()
	return nil
}

// OnMessage hands a complete text or binary message to on_message.
func (pl *Plugin) OnMessage(c *gateway.Conn, m gateway.Message) {
	cc, ok := c.State().(*conn)
	if !ok {
		return
	}
	typ := C.int(C.MESSAGE_TYPE_TEXT)
	if m.Type == websocket.BinaryMessage {
		typ = C.MESSAGE_TYPE_BINARY
	}
	buf := &C.empty_message[0]
	if len(m.Data) > 0 {
		// Go memory without Go pointers, valid for the call only, which is
		// exactly what on_message promises.
		buf = (*C.uchar)(unsafe.Pointer(&m.Data[0]))
	}
	C.call_on_message(pl.p, cc.private, cc.server, typ, buf, C.size_t(len(m.Data)))
}

// OnClose runs on_disconnect and frees the connection's C state.
func (pl *Plugin) OnClose(c *gateway.Conn, _ websocket.CloseStatus) {
	cc, ok := c.State().(*conn)
	if !ok || cc.server == nil {
		return
	}
	cc.closed.Store(true)
	C.call_on_disconnect(pl.p, cc.private, cc.server)
	cc.free()
}

func (cc *conn) free() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.server != nil {
		C.ws_free_server(cc.server)
		cc.server = nil
		cc.handle.Delete()
	}
	for _, s := range cc.cstrs {
		C.free(unsafe.Pointer(s))
	}
	for _, s := range cc.protos {
		C.free(unsafe.Pointer(s))
	}
	cc.cstrs, cc.protos = nil, nil
	if cc.req != nil {
		C.ws_request_free(cc.req)
		cc.req = nil
	}
}

// newRequest builds the daemon's request_rec for a connection, or returns
// nil when APR is not available.
func newRequest(c *gateway.Conn) unsafe.Pointer {
	if C.ws_apr_ready() == 0 {
		return nil
	}
	req := c.Request()
	var strs []*C.char
	cs := func(s string) *C.char {
		p := C.CString(s)
		strs = append(strs, p)
		return p
	}
	defer func() {
		for _, p := range strs {
			C.free(unsafe.Pointer(p))
		}
	}()
	uri := req.Path
	if req.RawQuery != "" {
		uri += "?" + req.RawQuery
	}
	proto := fmt.Sprintf("HTTP/%d.%d", req.ProtoMajor, req.ProtoMinor)
	var in C.ws_request_info
	in.method = cs(req.Method)
	in.request_line = cs(req.Method + " " + uri + " " + proto)
	in.unparsed_uri = cs(uri)
	in.path = cs(req.Path)
	in.query = cs(req.RawQuery)
	in.host = cs(req.Host)
	in.proto_major, in.proto_minor = C.int(req.ProtoMajor), C.int(req.ProtoMinor)
	if req.TLS != nil {
		in.tls = 1
	}
	client := req.ClientIP
	if client == "" {
		client, _ = splitHostPort(req.RemoteAddr)
	}
	_, cport := splitHostPort(req.RemoteAddr)
	lip, lport := splitHostPort(req.LocalAddr)
	in.client_ip, in.client_port = cs(client), C.int(cport)
	in.local_ip, in.local_port = cs(lip), C.int(lport)
	in.conn_id = C.long(c.ID())
	if id := req.Identity; id != nil {
		in.user, in.auth_type = cs(id.User), cs(id.Method)
	}
	// headers_in as httpd has it: Host among them (net/http keeps it
	// apart).
	hdr := req.Header().Clone()
	if req.Host != "" && hdr.Get("Host") == "" {
		hdr.Set("Host", req.Host)
	}
	var n int
	for _, vs := range hdr {
		n += len(vs)
	}
	arr := (**C.char)(C.calloc(C.size_t(2*n+2), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	defer C.free(unsafe.Pointer(arr))
	all := unsafe.Slice(arr, 2*n+2)
	i := 0
	for k, vs := range hdr {
		for _, v := range vs {
			all[i], all[n+1+i] = cs(k), cs(v)
			i++
		}
	}
	in.nheaders = C.size_t(n)
	in.header_names = arr
	in.header_values = &all[n+1]
	return C.ws_request_new(&in)
}

// splitHostPort splits "ip:port"; a UNIX socket's path gives no address.
func splitHostPort(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

func connOf(h C.uintptr_t) *conn {
	defer func() { recover() }() // a handle already deleted: the connection is gone
	if cc, ok := cgo.Handle(h).Value().(*conn); ok {
		return cc
	}
	return nil
}

//export wsgatePluginSend
func wsgatePluginSend(h C.uintptr_t, typ C.int, buf *C.uchar, n C.size_t) C.size_t {
	cc := connOf(h)
	if cc == nil || cc.closed.Load() {
		return 0
	}
	var data []byte
	if buf != nil && n > 0 {
		data = unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	}
	var err error
	ws := cc.gc.Engine()
	switch typ {
	case C.MESSAGE_TYPE_TEXT:
		err = ws.Send(websocket.TextMessage, data)
	case C.MESSAGE_TYPE_BINARY:
		err = ws.Send(websocket.BinaryMessage, data)
	case C.MESSAGE_TYPE_PING:
		err = ws.Ping(data)
	case C.MESSAGE_TYPE_PONG:
		err = ws.Pong(data)
	default:
		// MESSAGE_TYPE_CLOSE, and any type mod_websocket does not know,
		// send a close frame with the buffer as its body.
		err = ws.SendCloseFrame(data)
	}
	if err != nil {
		return 0
	}
	return n
}

//export wsgatePluginHeaderGet
func wsgatePluginHeaderGet(h C.uintptr_t, key *C.char) *C.char {
	cc := connOf(h)
	if cc == nil {
		return nil
	}
	k := C.GoString(key)
	vals := cc.gc.Request().HeaderValues(k)
	if len(vals) == 0 {
		return nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cstrs == nil {
		return nil
	}
	canon := http.CanonicalHeaderKey(k)
	if s, ok := cc.cstrs[canon]; ok {
		return s
	}
	s := C.CString(vals[0])
	cc.cstrs[canon] = s
	return s
}

//export wsgatePluginHeaderSet
func wsgatePluginHeaderSet(h C.uintptr_t, key, value *C.char) {
	if cc := connOf(h); cc != nil {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.started {
			return
		}
		k, v := C.GoString(key), C.GoString(value)
		if http.CanonicalHeaderKey(k) == "Sec-Websocket-Protocol" {
			// In httpd this sets headers_out, which is how the 101 selects
			// a subprotocol: the same as protocol_set.
			cc.gc.SetSubprotocol(v)
			return
		}
		if http.CanonicalHeaderKey(k) == "Set-Cookie" {
			// httpd's apr_table_set would keep only the last cookie; each
			// needs a header of its own (RFC 6265 §3), so each call adds
			// one, in order: a plugin clearing two cookies clears both.
			cc.gc.ResponseHeader().Add(k, v)
			return
		}
		cc.gc.ResponseHeader().Set(k, v)
	}
}

//export wsgatePluginProtocolCount
func wsgatePluginProtocolCount(h C.uintptr_t) C.size_t {
	if cc := connOf(h); cc != nil {
		return C.size_t(len(cc.gc.Request().Protocols))
	}
	return 0
}

//export wsgatePluginProtocolIndex
func wsgatePluginProtocolIndex(h C.uintptr_t, i C.size_t) *C.char {
	cc := connOf(h)
	if cc == nil {
		return nil
	}
	protos := cc.gc.Request().Protocols
	if int(i) >= len(protos) {
		return nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cstrs == nil {
		return nil
	}
	if cc.protos == nil {
		cc.protos = make([]*C.char, len(protos))
	}
	if cc.protos[i] == nil {
		cc.protos[i] = C.CString(protos[i])
	}
	return cc.protos[i]
}

//export wsgatePluginProtocolSet
func wsgatePluginProtocolSet(h C.uintptr_t, p *C.char) {
	if cc := connOf(h); cc != nil {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if !cc.started {
			cc.gc.SetSubprotocol(C.GoString(p))
		}
	}
}

// Pointer returns the plugin's WebSocketPlugin structure, for a host that
// hands it on (FromPointer).
func (pl *Plugin) Pointer() unsafe.Pointer { return unsafe.Pointer(pl.p) }

// KeepsHandshakeHeaders implements gateway.KeepsHandshakeHeaders: the
// seeds' plugins saw every header field of the upgrade request.
func (*Plugin) KeepsHandshakeHeaders() {}
