// Package server assembles the standalone daemon: listeners (TCP, TLS,
// UNIX sockets) and the net/http front door in front of a gateway, the demo
// page, and graceful shutdown.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/recovered"
)

// Server is a running daemon.
type Server struct {
	cfg       *config.Config
	log       *slog.Logger
	gw        *gateway.Gateway
	http      *http.Server
	listeners []net.Listener
	unixPaths []string
	wg        sync.WaitGroup
}

// New builds the gateway and HTTP server for cfg. It opens no socket and
// starts nothing: every application is provisioned and validated, which
// is all `wsgate check` runs. Listen opens the sockets, Serve starts the
// applications and accepts; a Server that will not serve is released with
// Close.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.Listeners) == 0 {
		return nil, fmt.Errorf("%s: no listeners are configured", cfg.File)
	}
	if cfg.Server.HandshakeTimeout <= 0 {
		cfg.Server.HandshakeTimeout = config.DefaultHandshakeTimeout
	}
	if cfg.Server.ShutdownTimeout <= 0 {
		cfg.Server.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	gw, err := cfg.NewGateway(log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, gw: gw}
	up := &Upgrader{Gateway: gw, Fallback: s.fallback(), Log: log, HandshakeTimeout: cfg.Server.HandshakeTimeout}
	s.http = &http.Server{
		Handler:           up,
		ReadHeaderTimeout: cfg.Server.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// WebSocket over HTTP/2 (RFC 8441) is not offered: every listener
		// speaks HTTP/1.1, so browsers upgrade the usual way.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return s, nil
}

// Gateway returns the server's gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

// fallback serves what is not a WebSocket upgrade: the demo page at /, 426
// on a route's path, 404 elsewhere.
func (s *Server) fallback() http.Handler {
	type dir struct {
		prefix string
		h      http.Handler
	}
	var dirs []dir
	for _, st := range s.cfg.Static {
		dirs = append(dirs, dir{st.Path, http.StripPrefix(st.Path, http.FileServer(http.Dir(st.Dir)))})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Server.Demo && r.URL.Path == "/" {
			serveDemo(w, r, s.gw)
			return
		}
		for _, d := range dirs {
			if strings.HasPrefix(r.URL.Path, d.prefix) {
				d.h.ServeHTTP(w, r)
				return
			}
		}
		if s.gw.Route(r.URL.Path) != nil {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, "this is a WebSocket endpoint: connect with a WebSocket client", http.StatusUpgradeRequired)
			return
		}
		http.NotFound(w, r)
	})
}

// Listen opens every configured listener. On error, the listeners opened
// so far are closed.
func (s *Server) Listen() error {
	for _, l := range s.cfg.Listeners {
		ln, err := s.listen(l)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("%s:%d: listen: %w", s.cfg.File, l.Line, err)
		}
		s.listeners = append(s.listeners, ln)
	}
	return nil
}

func (s *Server) listen(l config.Listener) (net.Listener, error) {
	var ln net.Listener
	var err error
	switch l.Network {
	case "unix":
		if fi, statErr := os.Lstat(l.Address); statErr == nil && fi.Mode()&os.ModeSocket != 0 {
			// A socket left behind by a previous run that did not clean up.
			if c, dialErr := net.Dial("unix", l.Address); dialErr == nil {
				c.Close()
				return nil, fmt.Errorf("%s is in use by another server", l.Address)
			}
			os.Remove(l.Address)
		}
		ln, err = net.Listen("unix", l.Address)
		if err == nil {
			s.unixPaths = append(s.unixPaths, l.Address)
			err = os.Chmod(l.Address, l.Mode)
		}
	default:
		ln, err = net.Listen("tcp", l.Address)
	}
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	if l.TLS != nil {
		cert, err := tls.LoadX509KeyPair(l.TLS.Cert, l.TLS.Key)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	}
	return ln, nil
}

// Addrs returns the addresses being listened on, in configuration order.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// Serve starts the applications (producer pools connect) and accepts
// connections on every listener until Shutdown.
func (s *Server) Serve() error {
	if err := s.gw.Start(context.Background()); err != nil {
		return err
	}
	for i, ln := range s.listeners {
		s.log.Info("listening", "address", ln.Addr().String(), "network", ln.Addr().Network(), "tls", s.cfg.Listeners[i].TLS != nil)
		s.wg.Add(1)
		recovered.Go("listener "+ln.Addr().String(), func() {
			defer s.wg.Done()
			if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("listener failed", "address", ln.Addr().String(), "err", err)
			}
		})
	}
	return nil
}

// Shutdown stops accepting, closes every WebSocket with 1001 and waits for
// them within ctx, stops the HTTP server, and stops the applications.
//
// The WebSockets are closed first, while the HTTP server drains in
// parallel: net/http's Shutdown waits for connections that have not sent
// a request yet (a browser's preconnect) for up to five seconds, and a
// long plain download can hold it for the whole timeout; neither may delay
// the 1001 every WebSocket client is owed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("shutting down", "connections", s.gw.Len())
	s.closeListeners()
	httpDone := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("HTTP shutdown panicked", "panic", v)
				httpDone <- fmt.Errorf("panic: %v", v)
			}
		}()
		// Upgraded connections are not net/http's any more: the gateway
		// closes them.
		httpDone <- s.http.Shutdown(ctx)
	}()
	errWS := s.gw.Shutdown(ctx)
	errHTTP := <-httpDone
	if errors.Is(errHTTP, net.ErrClosed) {
		errHTTP = nil // the listeners, which closeListeners closed first
	}
	s.wg.Wait()
	errStop := s.gw.Stop(ctx)
	for _, p := range s.unixPaths {
		os.Remove(p)
	}
	return errors.Join(errWS, errHTTP, errStop)
}

// Close releases a Server that was built but will not serve (or failed
// to): its listeners and its applications.
func (s *Server) Close() error {
	s.closeListeners()
	for _, p := range s.unixPaths {
		os.Remove(p)
	}
	return s.gw.Stop(context.Background())
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// NewLogger builds the logger a config asks for. The returned closer
// closes a log file.
func NewLogger(c config.Log) (*slog.Logger, io.Closer, error) {
	var w io.Writer
	var closer io.Closer = io.NopCloser(nil)
	switch strings.ToLower(c.Output) {
	case "", "stderr":
		w = os.Stderr
	case "stdout":
		w = os.Stdout
	default:
		f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log output: %w", err)
		}
		w, closer = f, f
	}
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), closer, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), closer, nil
}
