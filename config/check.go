package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

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
			bad := false
			at := func(line int) int {
				if line > 0 {
					return line
				}
				return max(t.Line, l.Line)
			}
			for _, f := range []struct {
				key, path string
				line      int
			}{{"cert", t.Cert, t.CertLine}, {"key", t.Key, t.KeyLine}} {
				if _, err := os.ReadFile(f.path); err != nil {
					add(at(f.line), k+".tls."+f.key, "%v", unwrapPath(err))
					bad = true
				}
			}
			if !bad {
				if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
					add(at(0), k+".tls", "%v", err)
				}
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
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			out = append(out, &Error{File: c.File, Line: a.Line, Key: "admin.listen",
				Msg: fmt.Sprintf("warning: %s is not a loopback address: the admin listener has no authentication, and whoever reaches it can reload the configuration and publish to any room (keep it on loopback or a UNIX socket, or firewall it)", a.Address)})
		}
	}
	return out
}
