package daemon

import (
	"mime"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/wsgate/wsgate/config"
)

// The admin listener against browsers. Without admin.auth it has no
// password (and refuses control on TCP, see adminauth.go), and even with
// one a browser holding the credentials must not be usable by a web page
// an operator visits:
//
//   - DNS rebinding: a page whose name the attacker points at 127.0.0.1
//     sends Host: that name. Only the listener's own address, localhost,
//     and admin.hosts are answered; anything else gets 421.
//   - Cross-site requests: a page can POST to any address with a "simple"
//     request (text/plain, no preflight). The control endpoints (/reload,
//     /publish/) take application/json only, which a page cannot send
//     without a CORS preflight this listener never grants, and a foreign
//     Origin is refused everywhere: 403.
//   - The status page's WebSocket: the same Host and Origin rules.
//
// Bodies are bounded (admin.max_body) and must arrive within
// admin.body_timeout; admin.max_connections bounds what slow clients can
// hold (past it, 503 at once), so the admin listener cannot starve the
// public ones of descriptors.

// guardHandler wraps the admin handler with the Host, Origin and body
// rules.
func (a *admin) guardHandler(next http.Handler, cfg config.Admin) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(cause, msg string, status int) {
			a.s.front.refuse(cause)
			a.s.refusalLine(cause, r.RemoteAddr)
			http.Error(w, msg, status)
		}
		if !a.hostAllowed(r.Host, cfg) {
			refuse("admin_host", "this listener does not answer to "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			refuse("admin_origin", "cross-origin requests are refused", http.StatusForbidden)
			return
		}
		switch {
		case probe(r):
		case a.auth == nil && control(r) && a.unixPath == "":
			refuse("admin_control_refused", "control (/reload, /publish/) needs admin.auth, or an admin listener on a UNIX socket; SIGHUP also reloads", http.StatusForbidden)
			return
		case a.auth != nil && (control(r) || !a.auth.public) && !a.auth.allowed(r):
			a.s.front.refuse("admin_unauthenticated")
			a.s.refusalLine("admin_unauthenticated", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", a.auth.realm)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if control(r) {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				refuse("admin_content_type", "control requests are application/json", http.StatusForbidden)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBody)
		next.ServeHTTP(w, r)
	})
}

// control says whether r asks to change something: a reload or a publish.
func control(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead &&
		(r.URL.Path == "/reload" || strings.HasPrefix(r.URL.Path, "/publish"))
}

// hostAllowed checks a request's Host against the admin listener's names.
// On a UNIX socket no page can reach it by name: any Host is fine.
func (a *admin) hostAllowed(host string, cfg config.Admin) bool {
	if a.unixPath != "" {
		return true
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, ""
	}
	h = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(h), "["), "]")
	lhost, lport, _ := net.SplitHostPort(a.ln.Addr().String())
	if port != "" && port != lport {
		return false
	}
	if h == "localhost" {
		return true
	}
	if ip := net.ParseIP(h); ip != nil {
		// The listener's own address, or for a wildcard listener any
		// address: an address, unlike a name, cannot be rebound.
		lip := net.ParseIP(lhost)
		return lip != nil && (lip.Equal(ip) || lip.IsUnspecified())
	}
	for _, name := range cfg.Hosts {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// limitListener refuses connections past max open at once with a 503.
type limitListener struct {
	net.Listener
	s    *Server
	max  int64
	open atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.s.front.refuse("admin_max_connections")
		l.s.refusalLine("admin_max_connections", c.RemoteAddr().String())
		refuseConn(c, false)
	}
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	l    *limitListener
	done atomic.Bool
}

func (c *countedConn) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
}
