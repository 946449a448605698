// Package apachetest runs mod_wsgate inside a real Apache httpd: it builds
// the module with the project's Makefile, writes an httpd.conf into a
// temporary ServerRoot (the system's /etc/apache2 is never touched), and
// starts httpd on loopback ports.
package apachetest

import (
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	build   string // the Makefile's output: libwsgate.so, mod_wsgate.so, plugins/, and the echo producer
	apache2 = "/usr/sbin/apache2"
	modules = "/usr/lib/apache2/modules"
	skipWhy string
)

func TestMain(m *testing.M) {
	if _, err := os.Stat(apache2); err != nil {
		skipWhy = "apache2 is not installed"
	} else if _, err := exec.LookPath("apxs"); err != nil {
		skipWhy = "apxs (apache2-dev) is not installed"
	}
	if skipWhy == "" {
		dir, err := os.MkdirTemp("", "mod_wsgate-build")
		if err != nil {
			panic(err)
		}
		os.Chmod(dir, 0o755)
		build = dir
		for _, cmd := range []*exec.Cmd{
			exec.Command("make", "-C", "..", "OUT="+dir),
			exec.Command("go", "build", "-o", filepath.Join(dir, "echo-producer"), "../../../examples/producers/echo"),
		} {
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n%s", cmd, err, out)
				os.Exit(1)
			}
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func need(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
			t.Fatalf("%s; run ./scripts/test.sh, which installs apache2 and apache2-dev", skipWhy)
		}
		t.Skip(skipWhy)
	}
}

// httpd is one running server.
type httpd struct {
	t       *testing.T
	root    string
	conf    string
	Port    int
	TLSPort int
	Pool    *x509.CertPool // trusts the TLS listener's certificate
	log     string
}

// Addr is the plain listener's address.
func (h *httpd) Addr() string { return "127.0.0.1:" + strconv.Itoa(h.Port) }

// TLSAddr is the TLS listener's address.
func (h *httpd) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(h.TLSPort) }

// freePort returns a TCP port on 127.0.0.1 that is free now, outside the
// kernel's ephemeral range (ip_local_port_range, 32768-60999 by default),
// from which every outgoing connection of a busy test run takes its port:
// httpd has to be told its port, and binds it a moment later. start tries
// other ports if one was taken meanwhile all the same.
func freePort(t *testing.T) int {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

// options for a server.
type options struct {
	MPM     string // event (default), worker, prefork
	TLS     bool
	Modules []string // more modules, such as proxy or headers
	// Body is configuration for the main server (and, with TLS, the TLS
	// virtual host), typically <Location> sections. {{BUILD}} is replaced
	// by the build directory.
	Body string
	// Global is configuration outside the virtual hosts.
	Global string
	// LoadModule, when set, replaces the lines that load mod_wsgate
	// (LoadModule wsgate_module and WsgateLibrary).
	LoadModule string
	// Files are written below the ServerRoot first (name: content), with
	// {{ROOT}} expanded; directories are made readable by the children.
	Files map[string]string
	// Port is the plain listener's port when the configuration must know
	// it beforehand; a free one otherwise. {{PORT}} in Global or Body is
	// the plain listener's port.
	Port int
}

// configure writes the configuration into a new ServerRoot.
func configure(t *testing.T, o options) *httpd {
	t.Helper()
	need(t)
	root, err := os.MkdirTemp("", "httpd-root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	// httpd's children run as www-data when the tests run as root; they
	// read and connect below the root.
	os.Chmod(root, 0o755)
	h := &httpd{t: t, root: root, conf: filepath.Join(root, "httpd.conf"), Port: o.Port, log: filepath.Join(root, "error.log")}
	if h.Port == 0 {
		h.Port = freePort(t)
	}
	if o.TLS {
		h.TLSPort = freePort(t)
	}
	if o.MPM == "" {
		o.MPM = "event"
	}
	expand := func(s string) string {
		return strings.NewReplacer("{{BUILD}}", build, "{{ROOT}}", root, "{{PORT}}", strconv.Itoa(h.Port)).Replace(s)
	}
	body := expand(o.Body)
	for name, content := range o.Files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(expand(content)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var c strings.Builder
	fmt.Fprintf(&c, "ServerRoot %s\nServerName 127.0.0.1\nListen 127.0.0.1:%d\n", root, h.Port)
	fmt.Fprintf(&c, "PidFile %s/httpd.pid\nErrorLog %s\nLogLevel info\nTimeout 30\n", root, h.log)
	fmt.Fprintf(&c, "Mutex file:%s default\n", root)
	if os.Geteuid() == 0 {
		c.WriteString("User www-data\nGroup www-data\n")
	}
	fmt.Fprintf(&c, "LoadModule mpm_%[1]s_module %[2]s/mod_mpm_%[1]s.so\n", o.MPM, modules)
	if o.MPM == "prefork" {
		c.WriteString("StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 40\n")
	} else {
		c.WriteString("StartServers 1\nThreadsPerChild 25\nMaxRequestWorkers 50\nServerLimit 2\n")
	}
	mods := append([]string{"authz_core"}, o.Modules...)
	if o.TLS {
		mods = append(mods, "ssl", "socache_shmcb")
	}
	for _, m := range mods {
		fmt.Fprintf(&c, "LoadModule %s_module %s/mod_%s.so\n", m, modules, m)
	}
	if o.LoadModule != "" {
		c.WriteString(expand(o.LoadModule) + "\n")
	} else {
		fmt.Fprintf(&c, "LoadModule wsgate_module %s/mod_wsgate.so\nWsgateLibrary %s/libwsgate.so\n", build, build)
	}
	c.WriteString(expand(o.Global) + "\n")
	c.WriteString(body + "\n")
	if o.TLS {
		cert, key, pool := selfSigned(t, root)
		h.Pool = pool
		fmt.Fprintf(&c, "Listen 127.0.0.1:%d https\nSSLSessionCache shmcb:%s/ssl_scache(512000)\n", h.TLSPort, root)
		fmt.Fprintf(&c, "<VirtualHost 127.0.0.1:%d>\nServerName 127.0.0.1\nSSLEngine on\nSSLCertificateFile %s\nSSLCertificateKeyFile %s\n%s\n</VirtualHost>\n",
			h.TLSPort, cert, key, body)
	}
	if err := os.WriteFile(h.conf, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// check runs httpd -t on the configuration: what a configuration error
// looks like to an administrator.
func (h *httpd) check() (string, error) {
	out, err := exec.Command(apache2, "-f", h.conf, "-t").CombinedOutput()
	return string(out), err
}

// start writes the configuration, checks it with -t, starts httpd and
// waits for its ports. It is stopped when the test ends, with -k stop; a
// server that needs SIGKILL fails the test.
func start(t *testing.T, o options) *httpd {
	t.Helper()
	var h *httpd
	for attempt := 1; ; attempt++ {
		h = configure(t, o)
		if out, err := h.check(); err != nil {
			conf, _ := os.ReadFile(h.conf)
			t.Fatalf("httpd -t: %v\n%s\n%s", err, out, conf)
		}
		out, err := exec.Command(apache2, "-f", h.conf, "-k", "start").CombinedOutput()
		if err == nil {
			break
		}
		// Another program took a port between freePort and httpd's bind
		// (AH00072: make_sock could not bind): new ports, new ServerRoot.
		if o.Port == 0 && attempt < 5 && strings.Contains(string(out)+h.Log(), "Address already in use") {
			continue
		}
		t.Fatalf("httpd -k start: %v\n%s\n%s", err, out, h.Log())
	}
	t.Cleanup(h.stop)
	for _, p := range []int{h.Port, h.TLSPort} {
		if p == 0 {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("httpd did not listen on %d:\n%s", p, h.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return h
}

// Log returns the error log.
func (h *httpd) Log() string {
	b, _ := os.ReadFile(h.log)
	return string(b)
}

// pids returns the parent's and the children's process ids.
func (h *httpd) pids() []int {
	b, err := os.ReadFile(filepath.Join(h.root, "httpd.pid"))
	if err != nil {
		return nil
	}
	parent, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	out := []int{parent}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(parent) {
			out = append(out, pid)
		}
	}
	return out
}

// Children returns the children's process ids.
func (h *httpd) Children() []int {
	p := h.pids()
	if len(p) < 2 {
		return nil
	}
	return p[1:]
}

// Signal runs httpd -k cmd (graceful, graceful-stop, restart, stop).
func (h *httpd) Signal(cmd string) {
	if out, err := exec.Command(apache2, "-f", h.conf, "-k", cmd).CombinedOutput(); err != nil {
		h.t.Errorf("httpd -k %s: %v\n%s", cmd, err, out)
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// stop runs -k stop and waits; needing SIGKILL is a failure.
func (h *httpd) stop() {
	pids := h.pids()
	if len(pids) == 0 {
		return
	}
	h.Signal("stop")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range pids {
			if alive(p) {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range pids {
		if alive(p) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	h.t.Errorf("httpd -k stop left processes behind after 15s; SIGKILL needed\n%s", h.Log())
}

// lineOf returns the line of the configuration that contains s.
func lineOf(t *testing.T, h *httpd, s string) int {
	t.Helper()
	b, err := os.ReadFile(h.conf)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q is not in the configuration", s)
	return 0
}
