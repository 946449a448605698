package websocket

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/internal/httptoken"
)

// extension is one element of a Sec-WebSocket-Extensions header (RFC 6455
// §9.1): a name and its parameters, in order.
type extension struct {
	Name   string
	Params []extensionParam
}

// extensionParam is one parameter; HasValue is false for a bare name.
type extensionParam struct {
	Name     string
	Value    string
	HasValue bool
}

// parseExtensions parses every Sec-WebSocket-Extensions line in order. A
// header that does not follow the RFC 6455 §9.1 grammar is an error (the
// request is malformed and gets 400); whether an extension's parameters
// make sense is for that extension to judge.
func parseExtensions(lines []string) ([]extension, string) {
	var out []extension
	for _, line := range lines {
		p := extParser{s: line}
		for {
			p.ows()
			if p.done() {
				break
			}
			if p.peek() == ',' { // empty list element (RFC 7230 §7)
				p.i++
				continue
			}
			name := p.token()
			if name == "" {
				return nil, "extension name expected at " + p.where()
			}
			ext := extension{Name: name}
			for {
				p.ows()
				if p.done() || p.peek() == ',' {
					break
				}
				if p.peek() != ';' {
					return nil, "';' or ',' expected at " + p.where()
				}
				p.i++
				p.ows()
				pn := p.token()
				if pn == "" {
					return nil, "parameter name expected at " + p.where()
				}
				param := extensionParam{Name: pn}
				p.ows()
				if !p.done() && p.peek() == '=' {
					p.i++
					p.ows()
					v, ok := p.value()
					if !ok {
						return nil, "parameter value expected at " + p.where()
					}
					param.Value, param.HasValue = v, true
				}
				ext.Params = append(ext.Params, param)
			}
			out = append(out, ext)
		}
	}
	return out, ""
}

type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool    { return p.i >= len(p.s) }
func (p *extParser) peek() byte    { return p.s[p.i] }
func (p *extParser) where() string { return "offset " + strconv.Itoa(p.i) }

func (p *extParser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *extParser) token() string {
	start := p.i
	for p.i < len(p.s) && httptoken.IsTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads a token or a quoted-string (RFC 7230 §3.2.6), unescaped.
func (p *extParser) value() (string, bool) {
	if p.done() {
		return "", false
	}
	if p.peek() != '"' {
		t := p.token()
		return t, t != ""
	}
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return b.String(), true
		case c == '\\' && p.i < len(p.s):
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '\t' || (c >= 0x20 && c != 0x7F):
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	return "", false
}

// DeflatePolicy is what a route allows of permessage-deflate (RFC 7692).
type DeflatePolicy struct {
	// ServerContextTakeover lets this side keep its LZ77 window between the
	// messages it sends: better compression of small, similar messages,
	// for a compressor (about 0.8 MiB) held while the connection is
	// sending. Without it every message is compressed on its own and
	// nothing is kept.
	ServerContextTakeover bool
	// ClientContextTakeover lets the client keep its window; this side then
	// keeps the last 2^ClientMaxWindowBits bytes it received.
	ClientContextTakeover bool
	// ServerMaxWindowBits caps the window this side compresses with (8-15).
	ServerMaxWindowBits int
	// ClientMaxWindowBits is the window the client is asked to stay within,
	// when its offer allows asking (8-15).
	ClientMaxWindowBits int
	// Threshold: messages shorter than this are sent uncompressed.
	Threshold int
	// Level is the compression level (1-9) of a context-takeover or
	// small-window compressor; stateless compression has one speed.
	Level int
}

func (p *DeflatePolicy) setDefaults() {
	if p.ServerMaxWindowBits == 0 {
		p.ServerMaxWindowBits = 15
	}
	if p.ClientMaxWindowBits == 0 {
		p.ClientMaxWindowBits = 15
	}
	if p.Threshold == 0 {
		p.Threshold = DefaultDeflateThreshold
	}
	if p.Level == 0 {
		p.Level = DefaultDeflateLevel
	}
}

// Deflate is permessage-deflate as negotiated for one connection.
type deflateParams struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	// ServerWindowBits is the window this side compresses with;
	// ClientWindowBits the one the client may use, which bounds the
	// dictionary kept for it.
	ServerWindowBits int
	ClientWindowBits int
	Threshold        int
	Level            int
}

// negotiateDeflate picks the first permessage-deflate offer in
// Sec-WebSocket-Extensions that the policy can meet, in the client's order
// of preference, and returns the connection's parameters and the response
// header value. It returns nil when there is no acceptable offer: the
// connection then proceeds without compression. A header that does not
// parse is a *HandshakeError (400).
func negotiateDeflate(h http.Header, policy DeflatePolicy) (*deflateParams, string, *HandshakeError) {
	lines := h.Values("Sec-WebSocket-Extensions")
	if len(lines) == 0 {
		return nil, "", nil
	}
	exts, perr := parseExtensions(lines)
	if perr != "" {
		return nil, "", badRequest(CauseBadExtensions, "invalid Sec-WebSocket-Extensions: "+perr)
	}
	policy.setDefaults()
	for _, e := range exts {
		if !strings.EqualFold(e.Name, "permessage-deflate") {
			continue
		}
		if d, resp, ok := acceptDeflate(e.Params, policy); ok {
			return d, resp, nil
		}
	}
	return nil, "", nil
}

// acceptDeflate answers one offer, or declines it (RFC 7692 §5): unknown
// or repeated parameters and invalid values decline the offer, not the
// handshake.
func acceptDeflate(params []extensionParam, p DeflatePolicy) (*deflateParams, string, bool) {
	var (
		seen                   = map[string]bool{}
		serverNoCT, clientNoCT bool
		serverBits             = 0 // offered value, 0 if absent
		clientBitsOffered      bool
		clientBits             = 0 // offered value, 0 if absent or bare
	)
	for _, prm := range params {
		name := strings.ToLower(prm.Name)
		if seen[name] {
			return nil, "", false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover":
			if prm.HasValue {
				return nil, "", false
			}
			serverNoCT = true
		case "client_no_context_takeover":
			if prm.HasValue {
				return nil, "", false
			}
			clientNoCT = true
		case "server_max_window_bits":
			v, ok := windowBits(prm)
			if !ok || !prm.HasValue {
				return nil, "", false
			}
			serverBits = v
		case "client_max_window_bits":
			clientBitsOffered = true
			if prm.HasValue {
				v, ok := windowBits(prm)
				if !ok {
					return nil, "", false
				}
				clientBits = v
			}
		default:
			return nil, "", false
		}
	}
	d := &deflateParams{Threshold: p.Threshold, Level: p.Level}
	resp := []string{"permessage-deflate"}

	// Our own direction (RFC 7692 §7.1.1.1, §7.1.2.1). We may always refrain
	// from context takeover and say so.
	if serverNoCT || !p.ServerContextTakeover {
		d.ServerNoContextTakeover = true
		resp = append(resp, "server_no_context_takeover")
	}
	d.ServerWindowBits = p.ServerMaxWindowBits
	if serverBits != 0 {
		d.ServerWindowBits = min(serverBits, p.ServerMaxWindowBits)
		// Echo it only because it was offered: Firefox fails the
		// handshake on a server_max_window_bits it did not ask for. A
		// smaller window than announced needs no announcement anyway.
		resp = append(resp, "server_max_window_bits="+strconv.Itoa(d.ServerWindowBits))
	}

	// The client's direction (§7.1.1.2, §7.1.2.2).
	if clientNoCT || !p.ClientContextTakeover {
		d.ClientNoContextTakeover = true
		resp = append(resp, "client_no_context_takeover")
	}
	d.ClientWindowBits = 15
	if clientBitsOffered {
		d.ClientWindowBits = p.ClientMaxWindowBits
		if clientBits != 0 {
			d.ClientWindowBits = min(clientBits, p.ClientMaxWindowBits)
		}
		if d.ClientWindowBits < 15 || clientBits != 0 {
			resp = append(resp, "client_max_window_bits="+strconv.Itoa(d.ClientWindowBits))
		}
	}
	return d, strings.Join(resp, "; "), true
}

// windowBits parses a window-bits value: a decimal integer from 8 to 15
// without leading zeros (RFC 7692 §7.1.2), possibly quoted.
func windowBits(p extensionParam) (int, bool) {
	v := p.Value
	if len(v) == 0 || len(v) > 2 || v[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 8 || n > 15 {
		return 0, false
	}
	return n, true
}
