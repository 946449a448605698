package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/testkit/testcert"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestReloadClientCertificates: a reload adds client_ca to a TLS listener
// that had none, turns client_auth from require to optional, and takes
// client_ca away again, and each handshake after it asks for client
// certificates as the configuration then says; the listener is never
// opened again. Certificates come from the openssl CLI.
func TestReloadClientCertificates(t *testing.T) {
	pki := testcert.NewPKI(t)
	daveCert, daveKey := pki.Client("dave", "dave", "dave@example.com", false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	yaml := func(clientTLS string) string {
		return fmt.Sprintf(`listen:
  - address: %s
    tls: {cert: %s, key: %s%s}
routes: [{path: /e, app: echo}]
`, addr, pki.ServerCert, pki.ServerKey, clientTLS)
	}
	s := testserver.StartWith(t, yaml(""), ln)

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	pair, err := tls.LoadX509KeyPair(daveCert, daveKey)
	if err != nil {
		t.Fatal(err)
	}
	// echo reports whether a client, with or without dave's certificate,
	// gets through the TLS handshake and the upgrade and has an echo.
	// Under TLS 1.3 a refused certificate shows on the first read.
	echo := func(withCert bool) bool {
		cfg := &tls.Config{RootCAs: pool}
		if withCert {
			cfg.Certificates = []tls.Certificate{pair}
		}
		d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 10 * time.Second}
		c, _, err := d.Dial("wss://"+addr+"/e", nil)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if c.WriteMessage(websocket.TextMessage, []byte("hi")) != nil {
			return false
		}
		_, p, err := c.ReadMessage()
		return err == nil && string(p) == "hi"
	}
	reload := func(clientTLS string) {
		t.Helper()
		cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml(clientTLS)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		name, clientTLS   string
		without, withCert bool
	}{
		{"no client_ca", "", true, true},
		{"client_ca added, client_auth require", ", client_ca: " + pki.CA + ", client_auth: require", false, true},
		{"client_auth optional", ", client_ca: " + pki.CA + ", client_auth: optional", true, true},
		{"client_auth require again", ", client_ca: " + pki.CA, false, true},
		{"client_ca taken away", "", true, true},
	} {
		if step.name != "no client_ca" {
			reload(step.clientTLS)
		}
		if got := echo(false); got != step.without {
			t.Errorf("%s: a client without a certificate got through: %v, want %v", step.name, got, step.without)
		}
		if got := echo(true); got != step.withCert {
			t.Errorf("%s: a client with dave's certificate got through: %v, want %v", step.name, got, step.withCert)
		}
	}
	if n := s.Logs.Count("TLS client certificates changed by reload"); n != 4 {
		t.Errorf("%d reloads said the client certificates changed, want 4\n%s", n, s.Logs)
	}
	if n := s.Logs.Count("msg=listening"); n != 1 {
		t.Errorf("the listener was opened %d times, want once", n)
	}
}
