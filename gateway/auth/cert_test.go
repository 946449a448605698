package auth_test

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testcert"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestClientCertificates: a TLS listener with client_auth: optional
// serves a route that lets in only clients with a certificate its
// client_ca signed, named from the certificate, and an open route on the
// same port. The certificates come from the openssl CLI; the clients are
// Python's ssl with websockets, and openssl s_client.
func TestClientCertificates(t *testing.T) {
	pki := testcert.NewPKI(t)
	daveCert, daveKey := pki.Client("dave", "dave", "dave@example.com", false)
	rogueCert, rogueKey := pki.Client("rogue", "dave", "dave@example.com", true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	gw := testserver.StartWith(t, fmt.Sprintf(`listen:
  - address: %s
    tls: {cert: %s, key: %s, client_ca: %s, client_auth: optional}
routes:
  - path: /who
    auth: {cert: {user: san.email}}
    %s
  - {path: /open, program: {command: [sh, -c, 'echo open; cat']}}
`, addr, pki.ServerCert, pki.ServerKey, pki.CA, who), ln)
	py := testserver.Python(t)
	for _, tc := range []struct {
		name, path, cert, key, want string
	}{
		{"a certificate the CA signed", "/who", daveCert, daveKey, "101 dave@example.com|Cert||"},
		{"no certificate", "/who", "", "", "401"},
		{"no certificate, an open route", "/open", "", "", "101 open"},
		{"a certificate from another CA", "/who", rogueCert, rogueKey, "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"testdata/certclient.py", "wss://" + addr + tc.path, pki.CA}
			if tc.cert != "" {
				args = append(args, tc.cert, tc.key)
			}
			out, err := exec.Command(py, args...).CombinedOutput()
			if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), tc.want) {
				t.Errorf("got %q %v, want %q", out, err, tc.want)
			}
		})
	}
	// openssl s_client with the certificate, and a raw upgrade.
	cmd := exec.Command("openssl", "s_client", "-quiet", "-connect", addr, "-CAfile", pki.CA, "-cert", daveCert, "-key", daveKey)
	cmd.Stdin = strings.NewReader("GET /who HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	r := bufio.NewReader(stdout)
	status, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Errorf("openssl s_client: %q %v", status, err)
	}
	if testserver.WaitFor(5*time.Second, func() bool { return gw.Logs.Count("user=dave@example.com") >= 1 }) == false {
		t.Errorf("no access line names the certificate's user\n%s", gw.Logs)
	}
}
