package wsoverhttp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/websocket"
)

// Config is a route's WebSocket-over-HTTP application.
type Config struct {
	// URL is where events are POSTed (http or https). When its path is
	// empty or "/", the client's request path is used, as Pushpin does.
	URL string
	// Subrequest is, in mod_wsgate, a URL path (with an optional query)
	// or file:PATH that httpd serves: each request is an internal
	// subrequest into httpd.
	Subrequest string
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
	// QueueBytes bounds the events waiting while a connection's request
	// is in flight (default 1 MiB): past it, the client is no longer read
	// (HTTP), or the route's slow-consumer policy applies (subrequests,
	// whose thread is the one reading the client).
	QueueBytes int
	// MaxResponse bounds a response body (default: the route's
	// max_message_size plus 64 KiB, at least 1 MiB).
	MaxResponse int64
	// Headers are the client's request headers forwarded with every
	// request, by canonical name; nil forwards all but the handshake's own.
	Headers []string
	// SigKey, when set, signs every request with Grip-Sig (HS256), as
	// Pushpin does with its route's key; SigIss is the token's issuer
	// (default "pushpin", Pushpin's).
	SigKey []byte
	SigIss string
}

// Defaults.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultQueueBytes = 1 << 20
)

// PosterKey is the gateway.Request.Extra key under which a front door
// offers a Poster that makes requests inside the server (mod_wsgate's
// subrequests).
const PosterKey = "wsoverhttp.poster"

// Request is one POST of events.
type Request struct {
	// Target is the URL (HTTP) or the path or file (subrequest).
	Target string
	Header http.Header
	Body   []byte
}

// Response is the application's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Poster makes the requests of one connection, one at a time.
type Poster interface {
	Post(ctx context.Context, r *Request, maxBody int64) (*Response, error)
}

// InHTTPD is set by mod_wsgate's library: subrequests are available.
var InHTTPD bool

// Handler is a gateway.Handler serving a route from a WebSocket-over-HTTP
// application.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	route  *gateway.Route
	poster Poster // HTTP; nil for subrequests
	maxMsg int64

	requests, failures atomic.Uint64
	latency            *gateway.Latency // of every request, answered or not
	sig                *signer          // nil: requests are not signed
}

// New returns a handler for cfg.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	h := &Handler{cfg: cfg, log: slog.Default(), latency: gateway.NewLatency(gateway.HandshakeBuckets),
		sig: newSigner(cfg.SigKey, cfg.SigIss)}
	if cfg.URL != "" {
		h.poster = newHTTPPoster(cfg.Timeout)
	}
	return h, nil
}

// Validate checks a configuration.
func (c *Config) Validate() error {
	switch {
	case c.URL == "" && c.Subrequest == "":
		return errors.New("needs http: a URL")
	case c.URL != "" && c.Subrequest != "":
		return errors.New("http and subrequest exclude each other")
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q is not an http:// or https:// URL", c.URL)
		}
	case !strings.HasPrefix(strings.TrimPrefix(c.Subrequest, "file:"), "/"):
		return fmt.Errorf("subrequest %q is not a URL path or file:PATH with an absolute path", c.Subrequest)
	}
	return nil
}

// Provision learns the route.
func (h *Handler) Provision(ctx gateway.AppContext) error {
	h.route, h.log = ctx.Route, ctx.Logger.With("events", h.target())
	h.maxMsg = ctx.Route.Policy.MaxMessageSize
	if h.maxMsg <= 0 {
		h.maxMsg = websocket.DefaultMaxMessageSize
	}
	if h.cfg.MaxResponse <= 0 {
		h.cfg.MaxResponse = max(h.maxMsg+64<<10, 1<<20)
	}
	return nil
}

func (h *Handler) target() string {
	if h.cfg.URL != "" {
		return h.cfg.URL
	}
	return h.cfg.Subrequest
}

// Broadcasts implements gateway.Broadcaster: GRIP subscriptions are rooms,
// which the publish endpoint reaches on every process of the bus.
func (h *Handler) Broadcasts() bool { return true }

// Links implements gateway.LinkReporter: requests made, and failed.
func (h *Handler) Links() gateway.LinkStats {
	st := gateway.LinkStats{Address: h.target(), Events: true, Requests: h.requests.Load(), RequestErrors: h.failures.Load()}
	if h.latency != nil {
		st.RequestSeconds = h.latency.Snapshot()
	}
	return st
}

// node tells this process's connections from another's in Connection-Id:
// gateway connection ids are unique per process only.
var node = func() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// notForwarded describe the upgrade request's own body and connection,
// or are the gateway's to set on its requests.
var notForwarded = map[string]bool{
	"Content-Length": true, "Content-Type": true, "Transfer-Encoding": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Proxy-Connection": true, "Accept": true,
	// A client's own signature would pass for the proxy's.
	GripSigHeader: true,
}

// OnOpen POSTs the OPEN event and accepts the client if the application
// answers 200 with an OPEN event first.
func (h *Handler) OnOpen(ctx context.Context, c *gateway.Conn) error {
	s := &session{h: h, c: c, poster: h.poster, meta: map[string]string{}, blocking: h.poster != nil}
	s.space = sync.NewCond(&s.mu)
	if s.poster == nil {
		p, ok := c.Request().Extra[PosterKey].(Poster)
		if !ok {
			h.log.Error("subrequest needs mod_wsgate")
			return gateway.Refuse(http.StatusInternalServerError, "subrequest needs mod_wsgate")
		}
		s.poster = p
	}
	s.target = h.requestTarget(c.Request())
	s.base = h.baseHeader(c)
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	resp, err := s.post(ctx, Append(nil, Open, nil))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return gateway.RefuseFor(http.StatusGatewayTimeout, gateway.CauseBackendTimeout, "events application did not answer OPEN in time")
		}
		return gateway.RefuseFor(http.StatusBadGateway, gateway.CauseBackendDown, err.Error())
	}
	if resp.Status != http.StatusOK {
		status := resp.Status
		if status < 400 || status > 599 {
			status = http.StatusBadGateway
		}
		return gateway.Refuse(status, fmt.Sprintf("events application answered OPEN with %d", resp.Status))
	}
	evs, err := Parse(resp.Body)
	if err != nil || len(evs) == 0 || evs[0].Type != Open {
		return gateway.RefuseFor(http.StatusBadGateway, gateway.CauseBackendDown, "events application did not accept with OPEN")
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		offered := false
		for _, o := range c.Request().Protocols {
			offered = offered || o == p
		}
		if !offered {
			return gateway.RefuseFor(http.StatusBadGateway, gateway.CauseBackendDown, "events application chose a subprotocol the client did not offer: "+p)
		}
		c.SetSubprotocol(p)
	}
	s.grip = parseGrip(resp.Header.Values("Sec-WebSocket-Extensions"))
	s.answered(resp.Header)
	c.SetState(s)
	s.apply(evs[1:])
	return nil
}

// requestTarget is where this client's events go.
func (h *Handler) requestTarget(r *gateway.Request) string {
	if h.cfg.Subrequest != "" {
		if strings.Contains(h.cfg.Subrequest, "?") || r.RawQuery == "" {
			return h.cfg.Subrequest
		}
		return h.cfg.Subrequest + "?" + r.RawQuery
	}
	u, _ := url.Parse(h.cfg.URL)
	if u.Path == "" || u.Path == "/" {
		u.Path = r.Path
		if u.RawQuery == "" {
			u.RawQuery = r.RawQuery
		}
	} else if u.RawQuery == "" {
		u.RawQuery = r.RawQuery
	}
	return u.String()
}

// baseHeader is what every request of the connection carries.
func (h *Handler) baseHeader(c *gateway.Conn) http.Header {
	r := c.Request()
	hd := http.Header{}
	only := h.cfg.Headers
	if only != nil {
		only = append([]string{"Sec-WebSocket-Protocol"}, only...) // how the application picks one
	}
	r.ForwardHeaders(only, notForwarded, func(k string, vs []string) {
		hd[k] = append([]string(nil), vs...)
	})
	if ip := r.ClientIP; ip != "" {
		if prior := hd.Get("X-Forwarded-For"); prior != "" {
			ip = prior + ", " + ip
		}
		hd.Set("X-Forwarded-For", ip)
	}
	hd.Set("Content-Type", ContentType)
	hd.Set("Accept", ContentType)
	hd.Set("Connection-Id", node+"-"+strconv.FormatUint(c.ID(), 16))
	return hd
}

// OnMessage queues the message as an event for the next request.
func (h *Handler) OnMessage(c *gateway.Conn, m gateway.Message) {
	s, ok := c.State().(*session)
	if !ok {
		return
	}
	typ := Text
	if m.Type == websocket.BinaryMessage {
		typ = Binary
	}
	s.queueEvent(typ, m.Data)
}

// OnClose sends CLOSE (with the code the client sent, or none) or, for a
// connection that ended without a close frame, DISCONNECT.
func (h *Handler) OnClose(c *gateway.Conn, st websocket.CloseStatus) {
	s, ok := c.State().(*session)
	if !ok {
		return
	}
	var ev []byte
	switch st.Code {
	case websocket.StatusAbnormalClosure:
		ev = Append(nil, Disconnect, nil)
	case websocket.StatusNoStatusReceived:
		ev = Append(nil, Close, CloseContent(0, ""))
	default:
		ev = Append(nil, Close, CloseContent(uint16(st.Code), st.Reason))
	}
	s.mu.Lock()
	s.closed = true
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	if s.failed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, ev...)
	s.startLocked()
	s.mu.Unlock()
}

// session is one connection's events.
type session struct {
	h        *Handler
	c        *gateway.Conn
	poster   Poster
	target   string
	base     http.Header
	blocking bool // OnMessage may wait for room (not on httpd's thread)
	grip     grip

	mu        sync.Mutex
	space     *sync.Cond
	queue     []byte // encoded events for the next request
	running   bool   // a goroutine is making requests
	keepAlive time.Duration
	kaTimer   *time.Timer
	kaDue     bool
	meta      map[string]string
	closed    bool // OnClose has queued the last event
	failed    bool // a request failed: the client is being closed
	detached  bool // GRIP detach: the client's messages are not sent
}

func (s *session) queueEvent(typ string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed || s.detached {
		return
	}
	n := len(data) + 16
	for s.blocking && len(s.queue) > 0 && len(s.queue)+n > s.h.cfg.QueueBytes && !s.failed {
		s.space.Wait() // stop reading this client until the request is out
	}
	if !s.blocking && len(s.queue) > 0 && len(s.queue)+n > s.h.cfg.QueueBytes {
		s.c.Engine().CountDropped()
		if s.c.Route().Policy.SlowConsumer == websocket.SlowConsumerClose {
			c := s.c
			recovered.Go("events client close", func() {
				c.CloseFor(gateway.CauseBackendSlow, websocket.StatusPolicyViolation, "events application too slow")
			})
		}
		return
	}
	if s.failed {
		return
	}
	s.queue = Append(s.queue, typ, data)
	s.startLocked()
}

// startLocked starts the request loop unless it runs.
func (s *session) startLocked() {
	if s.running {
		return
	}
	s.running = true
	recovered.Go("events requests", s.run)
}

// run makes requests while events wait: everything queued while one is in
// flight goes in the next.
func (s *session) run() {
	defer func() {
		if v := recover(); v != nil {
			recovered.Report("events requests", v)
			s.fail("internal error")
		}
	}()
	for {
		s.mu.Lock()
		if (len(s.queue) == 0 && !s.kaDue) || s.failed {
			s.running = false
			s.space.Broadcast()
			s.mu.Unlock()
			return
		}
		body := s.queue
		s.queue, s.kaDue = nil, false
		closed := s.closed
		s.space.Broadcast()
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.h.cfg.Timeout)
		resp, err := s.post(ctx, body)
		cancel()
		if closed {
			return // the last request: its answer has nobody to go to
		}
		switch {
		case err != nil:
			s.h.log.Warn("events request failed: closing the client with 1011", "err", err)
			s.fail("events application unavailable")
			return
		case resp.Status != http.StatusOK:
			s.h.log.Warn("events request answered with an error: closing the client with 1011", "status", resp.Status)
			s.fail("events application error")
			return
		}
		evs, err := Parse(resp.Body)
		s.answered(resp.Header)
		s.apply(evs)
		if err != nil {
			s.h.log.Warn("events application sent a malformed body: closing the client with 1011", "err", err)
			s.fail("events application error")
			return
		}
	}
}

// post makes one request.
func (s *session) post(ctx context.Context, body []byte) (*Response, error) {
	// The base is shared by every request (posters only read headers);
	// a copy only when there is metadata to add.
	hd := s.base
	s.mu.Lock()
	if len(s.meta) > 0 || s.h.sig != nil {
		hd = s.base.Clone()
		for k, v := range s.meta {
			hd.Set("Meta-"+k, v)
		}
	}
	s.mu.Unlock()
	if s.h.sig != nil {
		tok, err := s.h.sig.current(time.Now())
		if err != nil {
			return nil, fmt.Errorf("signing the request: %w", err)
		}
		hd.Set(GripSigHeader, tok)
	}
	s.h.requests.Add(1)
	t0 := time.Now()
	resp, err := s.poster.Post(ctx, &Request{Target: s.target, Header: hd, Body: body}, s.h.cfg.MaxResponse)
	if s.h.latency != nil {
		s.h.latency.Observe(time.Since(t0))
	}
	if err != nil || resp.Status != http.StatusOK {
		s.h.failures.Add(1)
	}
	return resp, err
}

// fail closes the client after a request failed (a 5xx, a timeout, a
// transport error): its events are not retried, since the application
// may have acted on them.
func (s *session) fail(reason string) {
	s.mu.Lock()
	already := s.failed
	s.failed, s.queue, s.running = true, nil, false
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	s.space.Broadcast()
	s.mu.Unlock()
	if !already {
		s.c.CloseFor(gateway.CauseBackendError, websocket.StatusInternalError, reason)
	}
}

// answered reads the headers every answer may carry: Set-Meta-* and
// Keep-Alive-Interval.
func (s *session) answered(hd http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, vs := range hd {
		if name, ok := strings.CutPrefix(k, "Set-Meta-"); ok && name != "" {
			if len(vs) == 0 || vs[0] == "" {
				delete(s.meta, name)
			} else {
				s.meta[name] = vs[0]
			}
		}
	}
	if v := hd.Get("Keep-Alive-Interval"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			s.keepAlive = time.Duration(n) * time.Second
		}
	}
	if s.keepAlive > 0 && !s.closed && !s.failed {
		if s.kaTimer == nil {
			s.kaTimer = time.AfterFunc(s.keepAlive, s.keepAliveDue)
		} else {
			s.kaTimer.Reset(s.keepAlive)
		}
	}
}

// keepAliveDue makes a request without events, as Keep-Alive-Interval asks.
func (s *session) keepAliveDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failed {
		return
	}
	s.kaDue = true
	s.startLocked()
}

// apply carries out the events of an answer.
func (s *session) apply(evs []Event) {
	c := s.c
	for _, ev := range evs {
		switch ev.Type {
		case Text:
			data := ev.Content
			if s.grip.on {
				if ctl, ok := bytes.CutPrefix(data, []byte("c:")); ok {
					s.control(ctl)
					continue
				}
				data, _ = bytes.CutPrefix(data, []byte(s.grip.prefix))
			}
			if !utf8.Valid(data) {
				s.h.log.Warn("events application sent a TEXT event that is not UTF-8: closing the client with 1011")
				s.fail("events application sent invalid UTF-8")
				return
			}
			c.Send(websocket.TextMessage, data)
		case Binary:
			c.Send(websocket.BinaryMessage, ev.Content)
		case Ping:
			c.Ping(ev.Content)
		case Pong:
			c.Pong(ev.Content)
		case Close:
			code, reason := ParseClose(ev.Content)
			if c.Close(websocket.StatusCode(code), reason) != nil {
				c.CloseFor(gateway.CauseBackendError, websocket.StatusInternalError, "")
			}
			return
		case Disconnect:
			c.CloseFor(gateway.CauseBackendGone, websocket.StatusInternalError, "events application disconnected")
			return
		}
		// OPEN after the first answer, and unknown types, are ignored.
	}
}

// control carries out a GRIP control message.
func (s *session) control(js []byte) {
	ctl, err := parseControl(js)
	if err != nil {
		s.h.log.Debug("malformed GRIP control message ignored", "err", err)
		return
	}
	switch ctl.Type {
	case "subscribe":
		if ctl.Channel != "" {
			s.c.Join(ctl.Channel)
		}
	case "unsubscribe":
		if ctl.Channel != "" {
			s.c.Leave(ctl.Channel)
		}
	case "detach":
		s.mu.Lock()
		s.detached = true
		s.mu.Unlock()
	case "set-meta":
		s.mu.Lock()
		if ctl.Value == "" {
			delete(s.meta, ctl.Name)
		} else if ctl.Name != "" {
			s.meta[ctl.Name] = ctl.Value
		}
		s.mu.Unlock()
	default:
		s.h.log.Debug("GRIP control message not served", "type", ctl.Type)
	}
}

// httpPoster makes requests with net/http.
type httpPoster struct{ client *http.Client }

func newHTTPPoster(timeout time.Duration) *httpPoster {
	tr := &http.Transport{
		Proxy:       nil, // the application is ours: never through a proxy from the environment
		DialContext: (&net.Dialer{Timeout: timeout}).DialContext,
		// One request per WebSocket is in flight at a time: keep as many
		// connections to the application as are busy together, so that a
		// busy route does not open a TCP connection per event.
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &httpPoster{client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (p *httpPoster) Post(ctx context.Context, r *Request, maxBody int64) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Target, bytes.NewReader(r.Body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, maxBody)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// errTooLarge is a response body over the limit.
var errTooLarge = errors.New("events application's answer is over the size limit")

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}
