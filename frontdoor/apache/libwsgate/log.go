package main

/*
#include <stdlib.h>
#include "io.h"
*/
import "C"

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"unsafe"
)

// httpd's log levels (http_log.h's APLOG_*).
const (
	aplogErr     = 3
	aplogWarning = 4
	aplogInfo    = 6
	aplogDebug   = 7
)

// httpdHandler writes the engine's log through httpd's error log (the
// shim's ap_log_error), so lines carry httpd's time, pid and module tag
// and obey LogLevel and ErrorLog. Records are formatted by slog's text
// handler, without the time and level, which httpd adds.
type httpdHandler struct {
	out   *httpdOut
	inner slog.Handler
}

// httpdOut is what the handlers derived from one another share: the
// buffer a record is formatted into, under a lock, and the shim's
// function.
type httpdOut struct {
	mu  sync.Mutex
	buf bytes.Buffer
	fn  C.wsgate_log_fn
}

func newHTTPDLogger(fn C.wsgate_log_fn, aplevel int) *slog.Logger {
	out := &httpdOut{fn: fn}
	opts := &slog.HandlerOptions{
		Level: slogLevel(aplevel),
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	}
	return slog.New(&httpdHandler{out: out, inner: slog.NewTextHandler(&out.buf, opts)})
}

// slogLevel is the least slog level httpd would write at aplevel.
func slogLevel(aplevel int) slog.Level {
	switch {
	case aplevel >= aplogDebug:
		return slog.LevelDebug
	case aplevel >= aplogInfo:
		return slog.LevelInfo
	case aplevel >= aplogWarning:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func aplogLevel(l slog.Level) C.int {
	switch {
	case l >= slog.LevelError:
		return aplogErr
	case l >= slog.LevelWarn:
		return aplogWarning
	case l >= slog.LevelInfo:
		return aplogInfo
	}
	return aplogDebug
}

func (h *httpdHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *httpdHandler) Handle(ctx context.Context, r slog.Record) error {
	o := h.out
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	line := C.CString(strings.TrimSuffix(o.buf.String(), "\n"))
	defer C.free(unsafe.Pointer(line))
	C.wsgate_call_log(o.fn, aplogLevel(r.Level), line)
	return nil
}

func (h *httpdHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &httpdHandler{out: h.out, inner: h.inner.WithAttrs(as)}
}

func (h *httpdHandler) WithGroup(name string) slog.Handler {
	return &httpdHandler{out: h.out, inner: h.inner.WithGroup(name)}
}
