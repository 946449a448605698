// Package recovered keeps a panic in one goroutine from taking the whole
// process down: in the daemon that would drop every client, and inside
// httpd (where the engine is a c-shared library) it would kill the child
// and every connection on it. Goroutines that serve one connection recover
// on their own and close that connection with 1011; the others (pools,
// writers, timers) start through Go, which logs the panic with its stack.
package recovered

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Go runs fn on a new goroutine; a panic in it is logged as coming from
// where, and the goroutine ends.
func Go(where string, fn func()) {
	go func() {
		defer Log(where)
		fn()
	}()
}

// Log, deferred, recovers a panic and logs it with its stack. It does
// nothing when there is no panic.
func Log(where string) {
	if v := recover(); v != nil {
		Report(where, v)
	}
}

// Report logs a panic its caller has recovered itself, with the stack.
func Report(where string, v any) {
	slog.Error("panic recovered", "in", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}
