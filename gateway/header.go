package gateway

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// A request's header fields are kept packed in one string, "Name\x00value\n"
// per value, names canonical and sorted. A connection lives for hours and
// reads its headers a few times, at the handshake; net/http's map with its
// keys and values kept about 1 KiB per idle connection for a minimal client
// and several for a browser's, the largest part of what one cost. The
// handshake's few lookups scan the string too: keeping the map for them
// would also keep Request in a larger size class.

// SetHeader gives the request its header fields. Front doors call it once,
// before Accept; h must not change after.
func (r *Request) SetHeader(h http.Header) {
	r.head = packHeader(h)
}

func packHeader(h http.Header) string {
	var store [32]string
	keys := store[:0]
	n := 0
	for k, vs := range h {
		keys = append(keys, k)
		for _, v := range vs {
			n += len(k) + len(v) + 2
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(n)
	for _, k := range keys {
		for _, v := range h[k] {
			b.WriteString(k)
			b.WriteByte(0)
			// Front doors refuse control characters in field values; a
			// stray one must not break the packing.
			if strings.ContainsAny(v, "\x00\n") {
				v = strings.NewReplacer("\x00", " ", "\n", " ").Replace(v)
			}
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// eachLine calls fn for each packed field value with its name and its
// whole line, newline included, in name order.
func (r *Request) eachLine(fn func(name, line string) bool) {
	for rest := r.head; rest != ""; {
		n := strings.IndexByte(rest, '\n') + 1
		if n == 0 {
			n = len(rest)
		}
		line := rest[:n]
		rest = rest[n:]
		if k, _, ok := strings.Cut(line, "\x00"); ok && !fn(k, line) {
			return
		}
	}
}

// eachHeader calls fn for each header field value, in name order.
func (r *Request) eachHeader(fn func(name, value string) bool) {
	r.eachLine(func(k, line string) bool {
		return fn(k, strings.TrimSuffix(line[len(k)+1:], "\n"))
	})
}

// HeaderValue returns the first value of the named request header field,
// or "": http.Header.Get's semantics.
func (r *Request) HeaderValue(name string) string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	var out string
	r.eachHeader(func(k, v string) bool {
		if k == name {
			out = v
			return false
		}
		return k < name
	})
	return out
}

// HeaderValues returns every value of the named request header field, in
// order: http.Header.Values's semantics.
func (r *Request) HeaderValues(name string) []string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	var out []string
	r.eachHeader(func(k, v string) bool {
		if k == name {
			out = append(out, v)
		}
		return k <= name
	})
	return out
}

// Header returns the request's header fields as a map. Each call builds a
// new one: use HeaderValue for a field or
// two, and keep what you need rather than calling this per message.
func (r *Request) Header() http.Header {
	h := http.Header{}
	r.eachHeader(func(k, v string) bool {
		h[k] = append(h[k], v)
		return true
	})
	return h
}

// KeepsRequestHeaders is implemented by applications that read the
// request's header fields after OnOpen (a producer backend re-announces a
// client with them after its producer restarts). For every other
// application the gateway drops them once OnOpen has accepted the
// connection: a client's header, up to server.max_header_bytes, would
// otherwise stay with its connection for its whole life, and 5,000 idle
// clients with a 15 KB header each held 80 MB for nothing. An
// application that needs a field later copies it in OnOpen.
// KeepsHandshakeHeaders implies it.
type KeepsRequestHeaders interface{ KeepsRequestHeaders() }

// keepsHeaders says what an application keeps of the request's header.
func keepsHeaders(h Handler) (handshake, rest bool) {
	if _, ok := h.(KeepsHandshakeHeaders); ok {
		return true, true
	}
	_, rest = h.(KeepsRequestHeaders)
	return false, rest
}

// dropHeaders forgets every header field, after OnOpen.
func (r *Request) dropHeaders() { r.head = "" }

// KeepsHandshakeHeaders is implemented by applications that see the
// handshake's own header fields (Upgrade, Connection, Sec-WebSocket-Key,
// Sec-WebSocket-Version, Sec-WebSocket-Extensions) in their request, as
// the seeds' plugins (header_get reads httpd's headers_in) and programs
// (HTTP_* variables) did. For every other application the gateway drops
// them before OnOpen: they describe the upgrade, which is done, and cost
// about 100 bytes on every connection for its whole life.
type KeepsHandshakeHeaders interface{ KeepsHandshakeHeaders() }

// dropHandshakeHeaders removes the handshake's own fields from the packed
// header; before any application code runs.
func (r *Request) dropHandshakeHeaders() {
	kept := 0
	r.eachLine(func(k, line string) bool {
		if !handshakeOwn[k] {
			kept += len(line)
		}
		return true
	})
	if kept == len(r.head) {
		return
	}
	// Exactly the lines kept: a larger buffer would stay with the string.
	b := make([]byte, 0, kept)
	r.eachLine(func(k, line string) bool {
		if !handshakeOwn[k] {
			b = append(b, line...)
		}
		return true
	})
	r.head = string(b)
}

// ReplaceHeader sets the values of one header field (none removes it), for
// an Authenticator that takes a credential out of the request before any
// back end sees it.
func (r *Request) ReplaceHeader(name string, values []string) {
	h := r.Header()
	name = textproto.CanonicalMIMEHeaderKey(name)
	if len(values) == 0 {
		delete(h, name)
	} else {
		h[name] = values
	}
	r.SetHeader(h)
}

// Cookie returns the value of the first cookie called name that has one
// in the request's Cookie fields, "" if none: for an Authenticator that
// takes a token from a cookie, or a balancer that hashes one.
func (r *Request) Cookie(name string) string {
	for _, line := range r.HeaderValues("Cookie") {
		cks, _ := http.ParseCookie(line)
		for _, ck := range cks {
			if ck.Name == name && ck.Value != "" {
				return ck.Value
			}
		}
	}
	return ""
}
