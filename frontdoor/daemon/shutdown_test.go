package daemon_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestShutdownClosesWebSocketsFirst: a connection that has sent no request
// yet (a browser's preconnect), which net/http's Shutdown waits for, must
// not hold back the 1001 every WebSocket client is owed. The WebSocket
// hears its close while the preconnect is still open.
func TestShutdownClosesWebSocketsFirst(t *testing.T) {
	cfg, err := config.Parse("s.yaml", []byte(`
listen: [{address: 127.0.0.1:0}]
server: {handshake_timeout: 30s, shutdown_timeout: 20s}
routes: [{path: /echo, app: echo}]
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addrs()[0].String()
	pre, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	c, err := ws.Upgrade(addr, "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	f, err := c.ReadFrame()
	if err != nil || f.Op != ws.OpClose || len(f.Payload) < 2 || f.Payload[0] != 0x03 || f.Payload[1] != 0xE9 {
		t.Fatalf("want a 1001 close frame, got %v %v", f, err)
	}
	// The preconnect is still open: its read finds nothing, not EOF.
	pre.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := pre.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the preconnect was closed before the WebSocket got its 1001 (read: %v)", err)
	}
	c.Write(ws.Close(1001, ""))
	pre.Close()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
