package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// CheckFiles checks what starting the daemon would read or create: each
// TLS listener's certificate and key, the directory of each UNIX socket,
// and the log file. It reads, and changes nothing; every problem is an
// *Error with the file, the line and the key, all reported together.
// `wsgate check` runs it, and so does the daemon before it opens anything.
func (c *Config) CheckFiles() error {
	var errs []error
	add := func(line int, key, format string, args ...any) {
		errs = append(errs, &Error{File: c.File, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for i, l := range c.Listeners {
		k := fmt.Sprintf("listen[%d]", i)
		if l.Network == "unix" {
			if err := writableDir(filepath.Dir(l.Address)); err != nil {
				add(l.Line, k+".unix", "cannot create the socket %s: %v", l.Address, err)
			}
		}
		if t := l.TLS; t != nil {
			checkTLS(t, l.Line, k+".tls", add)
		}
	}
	if t := c.Admin.TLS; t != nil {
		checkTLS(t, c.Admin.Line, "admin.tls", add)
	}
	if a := c.Admin.Auth; a != nil {
		if a.BearerTokenFile != "" {
			if _, err := ReadAdminToken(a.BearerTokenFile); err != nil {
				add(a.Line, "admin.auth.bearer_token_file", "%v", err)
			}
		}
		if a.BasicFile != "" {
			if _, err := ReadBasicFile(a.BasicFile); err != nil {
				add(a.Line, "admin.auth.basic_file", "%v", err)
			}
		}
	}
	if c.Admin.Network == "unix" {
		if err := writableDir(filepath.Dir(c.Admin.Address)); err != nil {
			add(c.Admin.Line, "admin.listen", "cannot create the socket %s: %v", c.Admin.Address, err)
		}
	}
	for _, f := range []struct{ key, path string }{{"credentials", c.Cluster.Credentials}, {"nkey", c.Cluster.NKey},
		{"tls.ca", c.Cluster.CA}, {"tls.cert", c.Cluster.Cert}, {"tls.key", c.Cluster.Key}} {
		if f.path != "" {
			if _, err := os.ReadFile(f.path); err != nil {
				add(c.Cluster.Line, "cluster."+f.key, "%v", unwrapPath(err))
			}
		}
	}
	switch out := c.Log.Output; strings.ToLower(out) {
	case "", "stderr", "stdout":
	default:
		if fi, err := os.Stat(out); err == nil {
			if fi.IsDir() {
				add(c.Log.Line, "log.output", "%s is a directory", out)
			} else if err := unix.Access(out, unix.W_OK); err != nil {
				add(c.Log.Line, "log.output", "cannot write to %s: %v", out, err)
			}
		} else if err := writableDir(filepath.Dir(out)); err != nil {
			add(c.Log.Line, "log.output", "cannot create %s: %v", out, err)
		}
	}
	return errors.Join(errs...)
}

// writableDir checks that dir exists, is a directory, and can be written.
func writableDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return unwrapPath(err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable: %v", dir, err)
	}
	return nil
}

// unwrapPath gives an *os.PathError's message as "path: problem".
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// Warnings are what a configuration allows but an operator should know:
// each is an *Error naming file, line and key, which `wsgate check`
// prints (and exits 0) and the daemon logs at warn when it starts.
func (c *Config) Warnings() []error {
	var out []error
	if a := c.Admin; a.Network == "tcp" {
		host, _, _ := net.SplitHostPort(a.Address)
		loopback := host == "localhost"
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			loopback = true
		}
		switch {
		case !loopback && a.Auth == nil:
			out = append(out, &Error{File: c.File, Line: a.Line, Key: "admin.listen",
				Msg: fmt.Sprintf("warning: %s is not a loopback address and the admin listener has no auth: whoever reaches it reads the metrics and the status page (control, /reload and /publish/, stays refused); set admin.auth, or keep it on loopback or a UNIX socket", a.Address)})
		case !loopback && a.TLS == nil && (a.Auth.BearerTokenFile != "" || a.Auth.BasicFile != ""):
			out = append(out, &Error{File: c.File, Line: a.Line, Key: "admin.tls",
				Msg: fmt.Sprintf("warning: %s is not a loopback address and the admin listener is not TLS: its token or passwords cross the network in clear", a.Address)})
		}
	}
	return out
}

// checkTLS checks a tls block's files: the certificate and key, and the
// client CA bundle.
func checkTLS(t *TLS, line int, key string, add func(line int, key, format string, args ...any)) {
	at := func(l int) int {
		if l > 0 {
			return l
		}
		return max(t.Line, line)
	}
	bad := false
	for _, f := range []struct {
		key, path string
		line      int
	}{{"cert", t.Cert, t.CertLine}, {"key", t.Key, t.KeyLine}} {
		if _, err := os.ReadFile(f.path); err != nil {
			add(at(f.line), key+"."+f.key, "%v", unwrapPath(err))
			bad = true
		}
	}
	if !bad {
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			add(at(0), key, "%v", err)
		}
	}
	if t.ClientCA != "" {
		if _, err := ReadCAPool(t.ClientCA); err != nil {
			add(at(t.ClientCALine), key+".client_ca", "%v", err)
		}
	}
}

// ReadCAPool reads a PEM bundle of CA certificates.
func ReadCAPool(name string) (*x509.CertPool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, unwrapPath(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", name)
	}
	return pool, nil
}

// ReadAdminToken reads the admin listener's bearer token: the file's
// first line, at least 16 bytes (a guessable token is no protection).
func ReadAdminToken(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", unwrapPath(err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < 16 {
		return "", fmt.Errorf("%s: the token is %d bytes; use at least 16 random ones (openssl rand -hex 32)", name, len(tok))
	}
	return tok, nil
}

// ReadBasicFile reads user:hash lines, the hashes bcrypt's ($2a$, $2b$,
// $2y$: htpasswd -B); blank lines and # comments are skipped.
func ReadBasicFile(name string) (map[string][]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, unwrapPath(err)
	}
	users := map[string][]byte{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: not user:hash", name, i+1)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: the hash for %s is not bcrypt (make one with htpasswd -B)", name, i+1, user)
		}
		users[user] = []byte(hash)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s has no user", name)
	}
	return users, nil
}
