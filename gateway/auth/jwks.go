package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wsgate/wsgate/internal/ratelog"
)

// keySet holds a route's verification keys: from a file, read once when
// the configuration is, or from a JWKS URL, fetched at the first
// handshake and then again:
//
//   - when the last answer's Cache-Control max-age (or Expires) has
//     passed, in the background, while the keys it gave keep serving;
//   - when a token names a kid the set does not have (a key rotated in
//     at the issuer), at once, at most once per minRefresh, so tokens
//     with made-up kids cannot make the gateway hammer the issuer.
//
// A failed fetch keeps the keys the last good one gave; only a gateway
// that never got any refuses with 503 (auth_unavailable).
type keySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	loaded   bool
	expires  time.Time     // when the keys are stale
	last     time.Time     // the last fetch's start
	fetching chan struct{} // closed when the fetch in flight ends
}

// Defaults for a JWKS URL.
const (
	DefaultJWKSTimeout    = 5 * time.Second
	DefaultJWKSMinRefresh = 10 * time.Second
	// defaultJWKSMaxAge is how long keys served without cache headers
	// are used before they are fetched again.
	defaultJWKSMaxAge = 5 * time.Minute
	maxJWKSAge        = 24 * time.Hour
	maxJWKSBytes      = 1 << 20
)

// Counters of every JWKS fetch in the process, for the metrics.
var (
	jwksOK, jwksFailed atomic.Uint64
	jwksLines          = ratelog.New(1, time.Minute)
	errNoKeys          = errors.New("no verification keys")
	errUnknownKid      = errors.New("no key with this kid")
)

func newKeySet(url string, timeout, minRefresh time.Duration) *keySet {
	return &keySet{url: url, client: &http.Client{Timeout: timeout}, minRefresh: minRefresh}
}

// staticKeys is a key set from a file: never fetched.
func staticKeys(keys []jose.JSONWebKey) *keySet {
	return &keySet{keys: keys, loaded: true, expires: time.Now().Add(100 * 365 * 24 * time.Hour)}
}

// candidates returns the keys that may verify a token with kid, fetching
// as the rules above say. errNoKeys: none could ever be fetched.
func (k *keySet) candidates(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if !k.loaded {
		k.mu.Unlock()
		k.fetchWait(ctx)
		k.mu.Lock()
		if !k.loaded {
			k.mu.Unlock()
			return nil, errNoKeys
		}
	}
	if k.url != "" && time.Now().After(k.expires) {
		k.startFetch()
	}
	keys := k.keys
	retry := k.url != "" && kid != "" && time.Since(k.last) >= k.minRefresh
	k.mu.Unlock()
	if kid == "" {
		return keys, nil
	}
	if m := byKid(keys, kid); m != nil {
		return m, nil
	}
	if !retry {
		return nil, errUnknownKid
	}
	k.fetchWait(ctx)
	k.mu.Lock()
	keys = k.keys
	k.mu.Unlock()
	if m := byKid(keys, kid); m != nil {
		return m, nil
	}
	return nil, errUnknownKid
}

func byKid(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	for _, key := range keys {
		if key.KeyID == kid {
			return []jose.JSONWebKey{key}
		}
	}
	return nil
}

// startFetch starts a fetch unless one is in flight; k.mu is held.
func (k *keySet) startFetch() chan struct{} {
	if k.fetching != nil {
		return k.fetching
	}
	done := make(chan struct{})
	k.fetching = done
	k.last = time.Now()
	go func() {
		defer func() {
			if v := recover(); v != nil {
				slog.Error("jwks: fetch panicked", "url", k.url, "panic", v)
			}
			k.mu.Lock()
			k.fetching = nil
			k.mu.Unlock()
			close(done)
		}()
		k.fetch()
	}()
	return done
}

// fetchWait starts a fetch, or joins the one in flight, and waits for it
// or for ctx.
func (k *keySet) fetchWait(ctx context.Context) {
	k.mu.Lock()
	done := k.startFetch()
	k.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// fetch gets the key set once and keeps it, or keeps the old one.
func (k *keySet) fetch() {
	keys, maxAge, err := k.get()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		jwksFailed.Add(1)
		// Try again no sooner than minRefresh.
		k.expires = time.Now().Add(k.minRefresh)
		if ok, suppressed := jwksLines.Allow(k.url, time.Now()); ok {
			slog.Warn("jwks: fetch failed; the keys fetched before stay in use", "url", k.url, "err", err,
				"have_keys", len(k.keys), "suppressed", suppressed)
		}
		return
	}
	jwksOK.Add(1)
	k.keys, k.loaded = keys, true
	k.expires = time.Now().Add(maxAge)
}

func (k *keySet) get() ([]jose.JSONWebKey, time.Duration, error) {
	req, err := http.NewRequest(http.MethodGet, k.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s answered %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > maxJWKSBytes {
		return nil, 0, fmt.Errorf("%s: key set over %d bytes", k.url, maxJWKSBytes)
	}
	keys, err := parseJWKS(body, false)
	if err != nil {
		return nil, 0, err
	}
	return keys, min(max(cacheAge(resp.Header), k.minRefresh), maxJWKSAge), nil
}

// cacheAge is how long an answer may be used, from its Cache-Control
// max-age or its Expires (RFC 9111 §4.2.1); no-store and no-cache count as
// none (fetched again after minRefresh).
func cacheAge(h http.Header) time.Duration {
	for _, cc := range h.Values("Cache-Control") {
		for _, d := range strings.Split(cc, ",") {
			d = strings.TrimSpace(strings.ToLower(d))
			if d == "no-store" || d == "no-cache" {
				return 0
			}
			if v, ok := strings.CutPrefix(d, "max-age="); ok {
				if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil && n >= 0 {
					return time.Duration(n) * time.Second
				}
			}
		}
	}
	if e := h.Get("Expires"); e != "" {
		if t, err := http.ParseTime(e); err == nil {
			return time.Until(t)
		}
		return 0
	}
	return defaultJWKSMaxAge
}

// parseJWKS reads a JSON Web Key Set (RFC 7517 §5). A key it cannot read,
// or one that is not for signatures, is skipped, as the RFC asks; a
// symmetric key is refused unless symmetric (from a file the operator
// wrote; a published set never holds one).
func parseJWKS(b []byte, symmetric bool) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if _, isSecret := key.Key.([]byte); isSecret && !symmetric {
			continue
		}
		key.Key = publicOf(key.Key)
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no signature key wsgate can use")
	}
	return keys, nil
}

// publicOf is the public half of a private key; others as they are.
func publicOf(k any) any {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	}
	return k
}

// readKeyFile reads public keys from a file: PEM ("PUBLIC KEY",
// "RSA PUBLIC KEY" or "CERTIFICATE" blocks, one or more) or a JSON Web
// Key Set.
func readKeyFile(name string) ([]jose.JSONWebKey, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "{") {
		return parseJWKS(b, false)
	}
	var keys []jose.JSONWebKey
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		var key any
		switch blk.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				key = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("%s: a %q PEM block is not a public key (give the issuer's public key or certificate, never its private key)", name, blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		keys = append(keys, jose.JSONWebKey{Key: key})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no PEM public key and is not a JSON Web Key Set", name)
	}
	return keys, nil
}

// JWKSFetches returns how many JWKS fetches succeeded and failed since
// the process started.
func JWKSFetches() (ok, failed uint64) { return jwksOK.Load(), jwksFailed.Load() }
