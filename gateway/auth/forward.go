package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/gateway"
)

// Forward asks an HTTP service whether a client may connect, as nginx's
// auth_request and Caddy's forward_auth do: a GET to URL carrying the
// client's method, URI, address and the chosen headers.
//
//   - 2xx lets the client in; the headers CopyHeaders lists become its
//     Identity's claims, and UserHeader's value its user.
//   - 401 and 403 are passed to the client, with the service's
//     WWW-Authenticate.
//   - Anything else, a service that cannot be reached, or one slower than
//     Timeout, refuses with 503 (auth_unavailable): the gateway fails
//     closed.
//
// Answers are kept for CacheTTL, at most CacheSize of them, keyed by
// everything the request to the service carried; zero TTL keeps none.
type Forward struct {
	URL string `json:"url"`
	// Headers are the client's request headers sent on (canonical
	// names): Authorization and Cookie when not set.
	Headers []string `json:"headers"`
	// CopyHeaders are the service's answer headers kept as the
	// identity's claims (and given to back ends with it).
	CopyHeaders []string `json:"copy_headers,omitempty"`
	// UserHeader names the user in the service's answer: Remote-User
	// when not set (Authelia's, and what Traefik's examples copy).
	UserHeader string        `json:"user_header"`
	Timeout    time.Duration `json:"timeout"`
	CacheTTL   time.Duration `json:"cache_ttl,omitempty"`
	CacheSize  int           `json:"cache_size,omitempty"`

	client *http.Client
	cache  *answers
}

var _ gateway.Authenticator = (*Forward)(nil)

// DefaultForwardTimeout bounds one question to the service.
const DefaultForwardTimeout = 2 * time.Second

// Provision checks the configuration.
func (f *Forward) Provision() error {
	var errs []error
	if u, err := url.Parse(f.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url: %q is not an http or https URL", f.URL))
	}
	if f.Headers == nil {
		f.Headers = []string{"Authorization", "Cookie"}
	}
	for i, h := range f.Headers {
		f.Headers[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	for i, h := range f.CopyHeaders {
		f.CopyHeaders[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	if f.UserHeader == "" {
		f.UserHeader = "Remote-User"
	}
	f.UserHeader = textproto.CanonicalMIMEHeaderKey(f.UserHeader)
	if f.Timeout <= 0 {
		f.Timeout = DefaultForwardTimeout
	}
	if f.CacheTTL > 0 {
		if f.CacheSize <= 0 {
			f.CacheSize = 10000
		}
		f.cache = &answers{max: f.CacheSize, m: map[[32]byte]answer{}}
	}
	f.client = &http.Client{
		Timeout: f.Timeout,
		// The service's redirect (to a login page) is its answer, not
		// something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return errors.Join(errs...)
}

// Authenticate asks the service, or its cached answer.
func (f *Forward) Authenticate(ctx context.Context, req *gateway.Request) (*gateway.Identity, error) {
	q, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, err
	}
	uri := req.Path
	if req.RawQuery != "" {
		uri += "?" + req.RawQuery
	}
	proto := "http"
	if req.TLS != nil {
		proto = "https"
	}
	// The names nginx's and Traefik's set-ups use for the original request.
	q.Header.Set("X-Forwarded-Method", req.Method)
	q.Header.Set("X-Forwarded-Uri", uri)
	q.Header.Set("X-Original-Uri", uri)
	q.Header.Set("X-Forwarded-Host", req.Host)
	q.Header.Set("X-Forwarded-Proto", proto)
	q.Header.Set("X-Forwarded-For", req.ClientIP)
	for _, h := range f.Headers {
		for _, v := range req.HeaderValues(h) {
			q.Header.Add(h, v)
		}
	}
	var key [32]byte
	if f.cache != nil {
		key = cacheKey(q.Header)
		if a, ok := f.cache.get(key, time.Now()); ok {
			forwardResults["cached"].Add(1)
			return f.result(a)
		}
	}
	start := time.Now()
	resp, err := f.client.Do(q)
	forwardLatency.Observe(time.Since(start))
	if err != nil {
		forwardResults["error"].Add(1)
		return nil, &gateway.AuthError{Status: http.StatusServiceUnavailable, Cause: gateway.CauseAuthUnavailable,
			Reason: "the auth service did not answer: " + shortErr(err), Header: http.Header{"Retry-After": {"5"}}}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a := answer{status: resp.StatusCode, header: http.Header{}, expires: time.Now().Add(f.CacheTTL)}
	for _, h := range append([]string{"Www-Authenticate", f.UserHeader}, f.CopyHeaders...) {
		if vs := resp.Header.Values(h); len(vs) > 0 {
			a.header[h] = vs
		}
	}
	forwardResults[resultLabel(resp.StatusCode)].Add(1)
	if f.cache != nil && (a.status/100 == 2 || a.status == 401 || a.status == 403) {
		f.cache.put(key, a)
	}
	return f.result(a)
}

func (f *Forward) result(a answer) (*gateway.Identity, error) {
	switch {
	case a.status/100 == 2:
		id := &gateway.Identity{User: a.header.Get(f.UserHeader), Method: "Forward"}
		if len(f.CopyHeaders) > 0 {
			id.Claims = map[string]any{}
			for _, h := range f.CopyHeaders {
				if v := a.header.Get(h); v != "" {
					id.Claims[h] = v
				}
			}
		}
		return id, nil
	case a.status == http.StatusUnauthorized:
		h := http.Header{}
		if w := a.header.Values("Www-Authenticate"); len(w) > 0 {
			h["Www-Authenticate"] = w
		}
		return nil, &gateway.AuthError{Status: a.status, Cause: gateway.CauseAuthInvalid, Reason: "the auth service answered 401", Header: h}
	case a.status == http.StatusForbidden:
		return nil, &gateway.AuthError{Status: a.status, Cause: gateway.CauseAuthForbidden, Reason: "the auth service answered 403"}
	}
	return nil, &gateway.AuthError{Status: http.StatusServiceUnavailable, Cause: gateway.CauseAuthUnavailable,
		Reason: fmt.Sprintf("the auth service answered %d", a.status), Header: http.Header{"Retry-After": {"5"}}}
}

func resultLabel(status int) string {
	switch {
	case status/100 == 2:
		return "allowed"
	case status == 401 || status == 403:
		return "denied"
	}
	return "error"
}

// shortErr drops the URL net/http repeats in its errors.
func shortErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") {
		return "timed out"
	}
	return err.Error()
}

// answer is what the service said, as kept.
type answer struct {
	status  int
	header  http.Header
	expires time.Time
}

// answers is a bounded cache of answers: past max, the oldest goes.
type answers struct {
	mu    sync.Mutex
	max   int
	m     map[[32]byte]answer
	order [][32]byte
}

func (c *answers) get(k [32]byte, now time.Time) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[k]
	if !ok || now.After(a.expires) {
		return answer{}, false
	}
	return a, true
}

func (c *answers) put(k [32]byte, a answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		for len(c.order) >= c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, k)
	}
	c.m[k] = a
}

// cacheKey is a hash of every header the question carried: two clients
// share an answer only if the service could not tell them apart.
func cacheKey(h http.Header) [32]byte {
	s := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			fmt.Fprintf(s, "%s\x00%s\n", k, v)
		}
	}
	var out [32]byte
	s.Sum(out[:0])
	return out
}

// Forward-auth counters of the process, for the metrics.
var (
	forwardResults = map[string]*atomic.Uint64{"allowed": {}, "denied": {}, "error": {}, "cached": {}}
	forwardLatency = gateway.NewLatency(ForwardLatencyBuckets)
)

// ForwardResults returns how many questions each result had (allowed,
// denied, error, cached).
func ForwardResults() map[string]uint64 {
	out := make(map[string]uint64, len(forwardResults))
	for k, v := range forwardResults {
		out[k] = v.Load()
	}
	return out
}

// ForwardLatencyBuckets are the upper bounds, in seconds, of the latency
// histogram.
var ForwardLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// ForwardLatency returns how long forward-auth services took to answer.
func ForwardLatency() gateway.Histogram { return forwardLatency.Snapshot() }
