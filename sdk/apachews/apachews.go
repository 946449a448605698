// Command apachews is libapachews: apache-ws's producer library API
// (include/apache-ws-common.h) over wsgate's framed producer protocol,
// built as a C shared library:
//
//	go build -buildmode=c-shared -o libapachews.so ./sdk/apachews
//
// (make apachews puts the library, the header and apachews.pc in
// build/apachews.) A producer written for apache-ws compiles against the
// header unchanged; its clients then arrive through any wsgate route
// (backend or docroot, mux or per-client) with message boundaries and
// binary messages, which apache-ws's raw socket could not carry.
//
// All logic is the Go producer SDK's event loop (sdk/producer); this file
// only maps apache-ws's names and memory rules onto it. C holds no Go
// pointer: each context, event and client is a small C struct holding a
// runtime/cgo Handle.
package main

/*
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

// The public header declares these with const qualifiers; cgo's exported
// prototypes cannot carry them, so the types are declared here again
// (the same layout and calling convention).
typedef struct apachews_context { uintptr_t handle; } apachews_context;
typedef struct apachews_event { uintptr_t handle; } apachews_event;
typedef struct apachews_client { uintptr_t handle; } apachews_client;
typedef struct apachews_stream { uint8_t *data; size_t length; size_t size; } apachews_stream;

// A send refused for its size fails with EMSGSIZE, as a datagram too
// large for its socket does: set from Go, which cannot write errno.
static void set_errno(int e) { errno = e; }
*/
import "C"

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/cgo"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/wsgate/wsgate/sdk/producer"
)

// The values of apache-ws-common.h.
const (
	acceptEvent = 8001
	ioEvent     = 8003

	statusSuccess          = 0
	statusNoData           = 1001
	statusConnectionClosed = 1002
	statusError            = 1004

	invalidSocket = -1
)

// server is an apachews_context.
type server struct {
	srv    *producer.Server
	ln     net.Listener
	loop   *producer.Loop
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	clients map[*producer.Client]*C.apachews_client // those the program has not closed
	c       *C.apachews_context
}

// event is an apachews_event.
type event struct {
	s      *server
	ev     *producer.Event
	client *C.apachews_client
	gone   bool // the client has gone: read says ConnectionClosed
}

// client is an apachews_client.
type client struct {
	s    *server
	pc   *producer.Client
	lang *C.char
}

func main() {}

//export apachews_create
func apachews_create(path *C.char) *C.apachews_context {
	ln, err := producer.Listen(C.GoString(path))
	if err != nil {
		slog.Error("apachews_create", "path", C.GoString(path), "err", err)
		return nil
	}
	s := &server{ln: ln, loop: producer.NewLoop(1024), clients: map[*producer.Client]*C.apachews_client{}, done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &producer.Server{Handler: s.loop}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	s.c = (*C.apachews_context)(C.malloc(C.size_t(unsafe.Sizeof(C.apachews_context{}))))
	s.c.handle = C.uintptr_t(cgo.NewHandle(s))
	return s.c
}

func serverOf(c *C.apachews_context) *server {
	if c == nil {
		return nil
	}
	return cgo.Handle(c.handle).Value().(*server)
}

//export apachews_server_next_event
func apachews_server_next_event(c *C.apachews_context) *C.apachews_event {
	s := serverOf(c)
	if s == nil {
		return nil
	}
	for {
		ev, err := s.loop.Next(s.ctx)
		if err != nil {
			return nil
		}
		e := &event{s: s, ev: ev}
		s.mu.Lock()
		switch ev.Type {
		case producer.AcceptEvent:
			cl := &client{s: s, pc: ev.Client}
			if lang := ev.Client.Header.Get("Accept-Language"); lang != "" {
				cl.lang = C.CString(lang)
			}
			cc := (*C.apachews_client)(C.malloc(C.size_t(unsafe.Sizeof(C.apachews_client{}))))
			cc.handle = C.uintptr_t(cgo.NewHandle(cl))
			s.clients[ev.Client] = cc
			e.client = cc
			// apache-ws's clients were connected before the program heard
			// of them: accept now, so that the program may send at once.
			ev.AcceptWith("", nil)
		case producer.MessageEvent:
			e.client = s.clients[ev.Client]
		case producer.CloseEvent:
			// As apache-ws reported a client that went: an IO event whose
			// read says ConnectionClosed. The program keeps the client
			// struct until it frees it.
			e.client = s.clients[ev.Client]
			e.gone = true
			delete(s.clients, ev.Client)
		}
		s.mu.Unlock()
		if e.client == nil {
			continue // a client the program has closed
		}
		ce := (*C.apachews_event)(C.malloc(C.size_t(unsafe.Sizeof(C.apachews_event{}))))
		ce.handle = C.uintptr_t(cgo.NewHandle(e))
		return ce
	}
}

func eventOf(c *C.apachews_event) *event {
	if c == nil {
		return nil
	}
	return cgo.Handle(c.handle).Value().(*event)
}

//export apachews_event_get_type
func apachews_event_get_type(c *C.apachews_event) C.int {
	if e := eventOf(c); e != nil && e.ev.Type == producer.AcceptEvent {
		return acceptEvent
	}
	return ioEvent
}

//export apachews_event_get_client
func apachews_event_get_client(c *C.apachews_event) *C.apachews_client {
	if e := eventOf(c); e != nil {
		return e.client
	}
	return nil
}

//export apachews_event_get_context
func apachews_event_get_context(c *C.apachews_event) *C.apachews_context {
	if e := eventOf(c); e != nil {
		return e.s.c
	}
	return nil
}

//export apachews_event_free
func apachews_event_free(c *C.apachews_event) {
	if c == nil {
		return
	}
	cgo.Handle(c.handle).Delete()
	C.free(unsafe.Pointer(c))
}

// apachews_event_read gives an IO event's message: a copy in memory from
// malloc, NUL-terminated after length bytes, which the caller frees.
//
//export apachews_event_read
func apachews_event_read(c *C.apachews_event, data **C.uint8_t, length *C.size_t) C.int {
	e := eventOf(c)
	if e == nil || data == nil || length == nil {
		return statusError
	}
	*data, *length = nil, 0
	switch {
	case e.gone:
		return statusConnectionClosed
	case e.ev.Type != producer.MessageEvent:
		return statusNoData
	}
	n := len(e.ev.Data)
	p := (*C.uint8_t)(C.malloc(C.size_t(n + 1)))
	buf := unsafe.Slice((*byte)(unsafe.Pointer(p)), n+1)
	copy(buf, e.ev.Data)
	buf[n] = 0
	*data, *length = p, C.size_t(n)
	return statusSuccess
}

// messageType is text for UTF-8, binary otherwise: apache-ws producers
// sent strings, and the framed protocol can now carry the rest.
func messageType(p []byte) producer.MessageType {
	if utf8.Valid(p) {
		return producer.Text
	}
	return producer.Binary
}

func send(pc *producer.Client, data unsafe.Pointer, length C.size_t) C.ssize_t {
	p := C.GoBytes(data, C.int(length))
	if failed(pc.Send(messageType(p), p)) {
		return -1
	}
	return C.ssize_t(length)
}

// failed reports whether a send failed; one refused for its size (over
// what the route takes: nothing was written) sets errno to EMSGSIZE.
func failed(err error) bool {
	if errors.Is(err, producer.ErrTooLarge) {
		C.set_errno(C.EMSGSIZE)
	}
	return err != nil
}

//export apachews_event_respond
func apachews_event_respond(c *C.apachews_event, data *C.uint8_t, length C.size_t) C.ssize_t {
	e := eventOf(c)
	if e == nil || e.client == nil {
		return -1
	}
	return send(e.ev.Client, unsafe.Pointer(data), length)
}

func clientOf(c *C.apachews_client) *client {
	if c == nil {
		return nil
	}
	return cgo.Handle(c.handle).Value().(*client)
}

//export apachews_client_send
func apachews_client_send(c *C.apachews_client, data unsafe.Pointer, length C.size_t) C.ssize_t {
	cl := clientOf(c)
	if cl == nil {
		return -1
	}
	return send(cl.pc, data, length)
}

// apachews_client_close closes the client (1000) and forgets it: no more
// events come for it. The struct stays until apachews_client_free.
//
//export apachews_client_close
func apachews_client_close(c *C.apachews_client) C.int {
	cl := clientOf(c)
	if cl == nil {
		return -1
	}
	cl.s.forget(cl.pc)
	cl.pc.Close(1000, "")
	return 0
}

func (s *server) forget(pc *producer.Client) {
	s.mu.Lock()
	delete(s.clients, pc)
	s.mu.Unlock()
}

//export apachews_context_remove_client
func apachews_context_remove_client(c *C.apachews_context, cc *C.apachews_client) {
	if s, cl := serverOf(c), clientOf(cc); s != nil && cl != nil {
		s.forget(cl.pc)
	}
}

//export apachews_client_free
func apachews_client_free(c *C.apachews_client) {
	cl := clientOf(c)
	if cl == nil {
		return
	}
	cl.s.forget(cl.pc)
	if cl.lang != nil {
		C.free(unsafe.Pointer(cl.lang))
	}
	cgo.Handle(c.handle).Delete()
	C.free(unsafe.Pointer(c))
}

//export apachews_client_get_socket
func apachews_client_get_socket(c *C.apachews_client) C.int {
	return invalidSocket
}

// apachews_client_get_language is the client's Accept-Language, which
// apache-ws's module passed along and never delivered.
//
//export apachews_client_get_language
func apachews_client_get_language(c *C.apachews_client) *C.char {
	if cl := clientOf(c); cl != nil {
		return cl.lang
	}
	return nil
}

// apachews_server_broadcast sends a message to every client the program
// has not closed, on every route that reaches this producer (one
// BROADCAST per route), and returns the bytes sent, summed over the
// clients as apache-ws's did.
//
//export apachews_server_broadcast
func apachews_server_broadcast(c *C.apachews_context, data *C.uint8_t, length C.size_t) C.ssize_t {
	s := serverOf(c)
	if s == nil {
		return -1
	}
	p := C.GoBytes(unsafe.Pointer(data), C.int(length))
	typ := messageType(p)
	s.mu.Lock()
	byRoute := map[string]*producer.Client{}
	n := 0
	for pc := range s.clients {
		byRoute[pc.Route] = pc
		n++
	}
	s.mu.Unlock()
	for _, pc := range byRoute {
		if err := pc.Broadcast(typ, p, false); errors.Is(err, producer.ErrTooLarge) {
			failed(err)
			return -1
		}
	}
	return C.ssize_t(n * int(length))
}

// apachews_server_close stops accepting and ends the event loop:
// apachews_server_next_event returns NULL from then on.
//
//export apachews_server_close
func apachews_server_close(c *C.apachews_context) {
	s := serverOf(c)
	if s == nil {
		return
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	s.ln.Close()
}

//export apachews_context_free
func apachews_context_free(c *C.apachews_context) {
	if c == nil {
		return
	}
	apachews_server_close(c)
	cgo.Handle(c.handle).Delete()
	C.free(unsafe.Pointer(c))
}

//export apachews_initialize_os
func apachews_initialize_os() {}

// The stream helpers: a byte buffer that grows in steps of 16 KiB, as
// apache-ws's did.
const streamStep = 0x4000

//export apachews_stream_new
func apachews_stream_new() *C.apachews_stream {
	s := (*C.apachews_stream)(C.calloc(1, C.size_t(unsafe.Sizeof(C.apachews_stream{}))))
	s.data = (*C.uint8_t)(C.malloc(streamStep))
	s.size = streamStep
	return s
}

//export apachews_stream_resize
func apachews_stream_resize(s *C.apachews_stream, hint C.size_t) C.int {
	size := hint - hint%streamStep + streamStep
	p := C.realloc(unsafe.Pointer(s.data), size)
	if p == nil {
		return -1
	}
	s.data, s.size = (*C.uint8_t)(p), size
	return 0
}

//export apachews_stream_free
func apachews_stream_free(s *C.apachews_stream) {
	if s == nil {
		return
	}
	C.free(unsafe.Pointer(s.data))
	C.free(unsafe.Pointer(s))
}

//export apachews_stream_append
func apachews_stream_append(s *C.apachews_stream, what *C.char, length C.size_t) C.int {
	if s.length+length > s.size && apachews_stream_resize(s, s.length+length) != 0 {
		return -1
	}
	C.memcpy(unsafe.Add(unsafe.Pointer(s.data), s.length), unsafe.Pointer(what), length)
	s.length += length
	return 0
}

//export apachews_stream_data
func apachews_stream_data(s *C.apachews_stream) *C.uint8_t { return s.data }

//export apachews_stream_length
func apachews_stream_length(s *C.apachews_stream) C.size_t { return s.length }

func init() {
	// Errors go to stderr, as the C library's perror did.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
