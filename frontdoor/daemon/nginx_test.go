package daemon_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// nginxConf is the README's nginx set-up ("The daemon behind nginx"),
// with the paths a test needs.
const nginxConf = `daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:%[2]d;
        location /ws/ {
            proxy_pass http://%[3]s;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
        }
    }
}
`

// TestBehindNginx runs the README's nginx set-up with Debian's nginx in
// front of the daemon. Clients from two loopback addresses go through
// it; the one from 127.0.0.2 writes its own X-Forwarded-For and Forwarded
// headers, a different forged address each time. The daemon still counts
// it as 127.0.0.2: the per-address limit stops it at its share, the other
// address keeps getting in, and the access log names the real client.
func TestBehindNginx(t *testing.T) {
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		missingPeer(t, "nginx (Debian's nginx)")
	}
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 5}
defaults: {trusted_proxies: [127.0.0.1]}
routes: [{path: /ws/echo, app: echo}]
`)
	dir := t.TempDir()
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	var front string
	var cmd *exec.Cmd
	for try := 0; ; try++ {
		port := 20000 + int(time.Now().UnixNano()%12000)
		conf := filepath.Join(dir, "nginx.conf")
		os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port, s.Addr)), 0o644)
		cmd = exec.Command(bin, "-c", conf, "-p", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		front = fmt.Sprintf("127.0.0.1:%d", port)
		if waitFor(10*time.Second, func() bool {
			c, err := net.Dial("tcp", front)
			if err == nil {
				c.Close()
			}
			return err == nil
		}) {
			break
		}
		cmd.Process.Kill()
		cmd.Wait()
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if try == 2 || !strings.Contains(string(b), "Address already in use") {
			t.Fatalf("nginx did not start:\n%s", b)
		}
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	dial := func(src string, i int, forge bool) (*ws.Conn, int) {
		nc, err := from(src, front)
		if err != nil {
			t.Fatal(err)
		}
		c := &ws.Conn{Conn: nc, R: bufio.NewReader(nc)}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		extra := []string{"Host: " + front}
		if forge {
			extra = append(extra, fmt.Sprintf("X-Forwarded-For: 10.1.2.%d", i), fmt.Sprintf("Forwarded: for=10.9.9.%d", i), fmt.Sprintf("X-Real-IP: 10.5.5.%d", i))
		}
		resp, err := c.Handshake(ws.Request("/ws/echo", extra...))
		if err != nil {
			t.Fatalf("through nginx: %v", err)
		}
		return c, resp.StatusCode
	}
	var held []*ws.Conn
	admitted, refused := 0, 0
	for i := range 8 {
		c, status := dial("127.0.0.2", i, true)
		switch status {
		case 101:
			admitted++
			held = append(held, c)
		case 503:
			refused++
			c.Close()
		default:
			t.Fatalf("forging client %d: status %d", i, status)
		}
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if admitted != 5 || refused != 3 {
		t.Errorf("a client forging its address got %d WebSockets and %d refusals; want 5 (its limit) and 3", admitted, refused)
	}
	c, status := dial("127.0.0.3", 0, false)
	if status != 101 {
		t.Fatalf("a client from another address got %d", status)
	}
	c.Write(ws.Text("through nginx"))
	if f, err := c.ReadFrame(); err != nil || string(f.Payload) != "through nginx" {
		t.Fatalf("echo through nginx: %v", err)
	}
	c.Close()
	for _, h := range held {
		h.Close()
	}
	// The access log names the real client, never a forged one.
	if !waitFor(10*time.Second, func() bool { return s.Logs.Count("client=127.0.0.2") >= 5 }) {
		t.Errorf("the access log does not name the forging client by its address:\n%s", testserver.Grep(s.Logs.String(), "client="))
	}
	for _, forged := range []string{"10.1.2.", "10.9.9.", "10.5.5."} {
		if n := s.Logs.Count("client=" + forged); n > 0 {
			t.Errorf("%d access log lines name a forged client %s*", n, forged)
		}
	}
}
