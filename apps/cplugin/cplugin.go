// Package cplugin runs apache-websocket plugins (C shared objects written
// against websocket_plugin.h) as gateway applications, in mod_wsgate and
// in the standalone daemon alike.
//
// Threads: the plugin's on_connect and on_message run on the goroutine
// that serves the connection (in mod_wsgate, the httpd worker thread, as
// in mod_websocket). Its send and close may be called from any thread,
// including threads the plugin starts itself; they queue the frame and
// return without waiting for the network.
package cplugin

/*
#cgo CFLAGS: -I${SRCDIR}/include -Wall -Wextra
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include "cplugin.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

func init() {
	gateway.CPluginLoader = func(library, init string) (gateway.Handler, error) { return Load(library, init) }
}

// Plugin is a loaded plugin. It is a gateway.Handler.
type Plugin struct {
	p    *C.WebSocketPlugin
	lib  unsafe.Pointer // dlopen handle, nil when loaded by someone else
	name string
}

// Load opens a plugin library and calls its initialization function, with
// apache-websocket's checks and error messages.
func Load(library, initFunc string) (*Plugin, error) {
	clib, cinit := C.CString(library), C.CString(initFunc)
	defer C.free(unsafe.Pointer(clib))
	defer C.free(unsafe.Pointer(cinit))
	h := C.dlopen(clib, C.RTLD_NOW|C.RTLD_LOCAL)
	if h == nil {
		return nil, fmt.Errorf("Could not load WebSocketHandler %s: %s", library, C.GoString(C.dlerror()))
	}
	sym := C.dlsym(h, cinit)
	if sym == nil {
		C.dlclose(h)
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
		return nil, fmt.Errorf("Invalid response from WebSocketHandler initialization function %s (%s)", initFunc, problem)
	}
	return &Plugin{p: cp, name: initFunc}, nil
}

// Cleanup calls the plugin's destroy and unloads a library Load opened.
func (pl *Plugin) Cleanup() error {
	C.call_destroy(pl.p)
	if pl.lib != nil {
		C.dlclose(pl.lib)
		pl.lib = nil
	}
	return nil
}

// conn is one connection as the plugin sees it.
type conn struct {
	gc      *gateway.Conn
	server  *C.WebSocketServer
	handle  cgo.Handle
	private unsafe.Pointer
	closed  atomic.Bool

	mu      sync.Mutex
	cstrs   map[string]*C.char // header values handed to the plugin
	protos  []*C.char
	started bool // past on_connect: headers and subprotocol are fixed
}

// RequestKey is where a front door puts httpd's request_rec (an
// unsafe.Pointer in the gateway.Request's Extra) for the plugin's
// request().
const RequestKey = "cplugin.request_rec"

// OnConnect runs the plugin's on_connect; NULL refuses with 403.
func (pl *Plugin) OnConnect(c *gateway.Conn) error {
	cc := &conn{gc: c, cstrs: map[string]*C.char{}}
	cc.handle = cgo.NewHandle(cc)
	r, _ := c.Request().Extra[RequestKey].(unsafe.Pointer)
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

// OnDisconnect runs on_disconnect and frees the connection's C state.
func (pl *Plugin) OnDisconnect(c *gateway.Conn, _ websocket.CloseStatus) {
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
	vals := cc.gc.Request().Header.Values(k)
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
		if !cc.started {
			cc.gc.ResponseHeader().Set(C.GoString(key), C.GoString(value))
		}
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
