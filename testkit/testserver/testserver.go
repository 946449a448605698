// Package testserver runs a wsgate daemon inside a test, from a YAML
// configuration, on loopback.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/gateway"
)

// Server is a daemon running in the test process.
type Server struct {
	*daemon.Server
	// Addr is the first listener's address.
	Addr string
	Logs *Logs
}

// Logs collects the daemon's log.
type Logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how many log lines contain s.
func (l *Logs) Count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// Start runs a daemon for yaml until the test ends. Set WSGATE_TEST_LOG to
// see its log.
func Start(t testing.TB, yaml string) *Server {
	t.Helper()
	return StartWith(t, yaml)
}

// StartWith is Start with listening sockets the test opened itself (on
// port 0, to know the address before the daemon starts): the listener or
// admin listener configured with one's address serves on it.
func StartWith(t testing.TB, yaml string, lns ...net.Listener) *Server {
	t.Helper()
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Line == 0 {
		// Tests run side by side: the admin listener takes any free port
		// unless the test configures it.
		cfg.Admin.Address = "127.0.0.1:0"
	}
	logs := &Logs{}
	var w io.Writer = logs
	if os.Getenv("WSGATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := daemon.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s.Adopt(lns...)
	if err := s.Listen(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &Server{Server: s, Addr: s.Addrs()[0].String(), Logs: logs}
}

// URL returns the ws:// URL of path on the first listener.
func (s *Server) URL(path string) string { return "ws://" + s.Addr + path }

// WaitFor polls cond for up to d.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// Link returns the producer link figures of the route at path (zero when
// the route has none).
func (s *Server) Link(path string) gateway.LinkStats {
	for _, l := range s.Links() {
		if l.Route == path {
			return l.LinkStats
		}
	}
	return gateway.LinkStats{}
}
