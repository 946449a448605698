package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/testkit/testcert"
	"github.com/wsgate/wsgate/testkit/testserver"
)

const publishBody = `{"items":[{"channel":"c","formats":{"ws-message":{"content":"x"}}}]}`

// call makes one request with client and returns its status and
// WWW-Authenticate.
func call(t *testing.T, client *http.Client, method, url, auth string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader(publishBody)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// TestAdminAuth: reads and control on the admin listener, by how it is
// set up. Without admin.auth, control is refused on TCP (any local user
// could reload or publish) and allowed on a UNIX socket (its 0600 mode
// decides); with it, a bearer token, a user from an htpasswd -B file, or
// a client certificate the admin CA signed let a request in, and nothing
// else does, but health probes.
func TestAdminAuth(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600)
	htpasswd := filepath.Join(dir, "htpasswd")
	if out, err := exec.Command(testserver.Peer(t, "apache2-utils", "htpasswd"), "-B", "-b", "-c", htpasswd, "ops", "s3cret pass").CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v %s", err, out)
	}
	pki := testcert.NewPKI(t)
	opsCert, opsKey := pki.Client("ops", "ops", "", false)
	plain := http.DefaultClient

	t.Run("no auth, TCP", func(t *testing.T) {
		s := start(t, "listen: [{address: 127.0.0.1:0}]\nadmin: {listen: 127.0.0.1:0}\nroutes: [{path: /e, app: echo}]\n")
		base := adminURL(s)
		for _, tc := range []struct {
			method, path string
			want         int
		}{{"GET", "/metrics", 200}, {"GET", "/status.json", 200}, {"POST", "/publish/", 403}, {"POST", "/reload", 403}} {
			if got, _ := call(t, plain, tc.method, base+tc.path, ""); got != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, got, tc.want)
			}
		}
		if n := testserver.Sample(s.Metrics(t), `wsgate_connections_refused_total{cause="admin_control_refused"}`); n != 2 {
			t.Errorf("control refusals counted: %v", n)
		}
	})

	t.Run("no auth, UNIX socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "admin.sock")
		start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nadmin: {listen: \"unix:%s\"}\nroutes: [{path: /e, app: echo}]\n", sock))
		unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		if got, _ := call(t, unix, "POST", "http://admin/publish/", ""); got != 200 {
			t.Errorf("publish on the UNIX socket: %d", got)
		}
	})

	t.Run("bearer token and basic", func(t *testing.T) {
		s := start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nadmin: {listen: 127.0.0.1:0, auth: {bearer_token_file: %s, basic_file: %s}}\nroutes: [{path: /e, app: echo}]\n", tokenFile, htpasswd))
		base := adminURL(s)
		basic := func(u, p string) string {
			r, _ := http.NewRequest("GET", "/", nil)
			r.SetBasicAuth(u, p)
			return r.Header.Get("Authorization")
		}
		for _, tc := range []struct {
			name, method, path, auth string
			want                     int
		}{
			{"probe", "GET", "/healthz", "", 200},
			{"ready probe", "GET", "/readyz", "", 200},
			{"metrics without", "GET", "/metrics", "", 401},
			{"metrics with the token", "GET", "/metrics", "Bearer " + adminToken, 200},
			{"publish without", "POST", "/publish/", "", 401},
			{"publish with a wrong token", "POST", "/publish/", "Bearer " + strings.Repeat("0", 32), 401},
			{"publish with the token", "POST", "/publish/", "Bearer " + adminToken, 200},
			{"publish as ops", "POST", "/publish/", basic("ops", "s3cret pass"), 200},
			{"publish as ops again (remembered)", "POST", "/publish/", basic("ops", "s3cret pass"), 200},
			{"a wrong password", "POST", "/publish/", basic("ops", "guess"), 401},
			{"an unknown user", "GET", "/status.json", basic("root", "s3cret pass"), 401},
		} {
			got, challenge := call(t, plain, tc.method, base+tc.path, tc.auth)
			if got != tc.want || (got == 401 && !strings.HasPrefix(challenge, `Basic realm="wsgate admin"`)) {
				t.Errorf("%s: %d %q, want %d", tc.name, got, challenge, tc.want)
			}
		}
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := testserver.Sample(string(m), `wsgate_connections_refused_total{cause="admin_unauthenticated"}`); n != 5 {
			t.Errorf("unauthenticated requests counted: %v, want 5", n)
		}
	})

	t.Run("client certificates over TLS", func(t *testing.T) {
		s := start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
admin:
  listen: 127.0.0.1:0
  tls: {cert: %s, key: %s, client_ca: %s, client_auth: optional}
  auth: {client_certificates: true, bearer_token_file: %s}
routes: [{path: /e, app: echo}]
`, pki.ServerCert, pki.ServerKey, pki.CA, tokenFile))
		pool := x509.NewCertPool()
		ca, _ := os.ReadFile(pki.CA)
		pool.AppendCertsFromPEM(ca)
		pair, err := tls.LoadX509KeyPair(opsCert, opsKey)
		if err != nil {
			t.Fatal(err)
		}
		withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
		without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		base := "https://" + s.AdminAddr().String()
		if got, _ := call(t, withCert, "POST", base+"/publish/", ""); got != 200 {
			t.Errorf("publish with the certificate: %d", got)
		}
		if got, _ := call(t, without, "POST", base+"/publish/", ""); got != 401 {
			t.Errorf("publish without a certificate: %d", got)
		}
		if got, _ := call(t, without, "POST", base+"/publish/", "Bearer "+adminToken); got != 200 {
			t.Errorf("publish with the token over TLS: %d", got)
		}
	})
}

// inNetns runs fn on a thread that has entered the network namespace
// name; the thread is never reused (its goroutine ends locked to it).
// Sockets fn makes stay in the namespace.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestAdminOffLoopback: the admin listener on an address that is not
// loopback, in a network namespace the test makes (10.231.0.1, not
// 127/8): wsgate check warns when it has no auth; then control is
// refused, and with a token it is accepted. The client connects from
// inside the namespace: nothing leaves the machine.
func TestAdminOffLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a network namespace needs root (CI and ./scripts/test.sh run as root)")
	}
	ip := testserver.Peer(t, "iproute2", "ip")
	ns := fmt.Sprintf("wsgate-test-%d", os.Getpid())
	for _, args := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}, {"-n", ns, "addr", "add", "10.231.0.1/32", "dev", "lo"}} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(adminToken), 0o600)
	// A client whose sockets are made in the namespace.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		inNetns(t, ns, func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
		return c, err
	}}}

	for _, tc := range []struct {
		name, auth       string
		warn             bool
		control, metrics int
	}{
		{"no auth", "", true, 403, 200},
		{"a bearer token", fmt.Sprintf(", auth: {bearer_token_file: %s}", tokenFile), false, 200, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ln net.Listener
			inNetns(t, ns, func() {
				var err error
				if ln, err = net.Listen("tcp", "10.231.0.1:0"); err != nil {
					t.Error(err)
				}
			})
			if ln == nil {
				t.FailNow()
			}
			yaml := fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nadmin: {listen: %s%s}\nroutes: [{path: /e, app: echo}]\n", ln.Addr(), tc.auth)
			cfg, err := config.Parse("admin.yaml", []byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			warned := false
			for _, w := range cfg.Warnings() {
				warned = warned || strings.Contains(w.Error(), "has no auth")
			}
			if warned != tc.warn {
				t.Errorf("wsgate check warns: %v, want %v (%v)", warned, tc.warn, cfg.Warnings())
			}
			s := testserver.StartWith(t, yaml, ln)
			if s.AdminAddr().String() != ln.Addr().String() {
				t.Fatalf("admin on %s", s.AdminAddr())
			}
			base := "http://" + ln.Addr().String()
			auth := ""
			if tc.auth != "" {
				auth = "Bearer " + adminToken
				if got, _ := call(t, client, "POST", base+"/publish/", ""); got != 401 {
					t.Errorf("publish without the token: %d, want 401", got)
				}
			}
			if got, _ := call(t, client, "POST", base+"/publish/", auth); got != tc.control {
				t.Errorf("publish: %d, want %d", got, tc.control)
			}
			if got, _ := call(t, client, "GET", base+"/metrics", auth); got != tc.metrics {
				t.Errorf("metrics: %d, want %d", got, tc.metrics)
			}
		})
	}
}
