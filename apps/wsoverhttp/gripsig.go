package wsoverhttp

// Grip-Sig: Pushpin signs every request it makes to the application with
// a JWT (HS256, claims iss and exp) under the route's key, and
// applications built with the GRIP libraries (validate_sig) ignore a
// request whose signature does not check: that is how they know a request
// came through their proxy. A route with sig_key signs the same way.
//
// The token is made with golang-jwt (a maintained JWT library, see
// go.mod) rather than by hand: the encoding, the claim types and the
// algorithm header are what the GRIP libraries' own JWT libraries check.

import (
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// GripSigHeader carries the signature; a client's own is never forwarded.
const GripSigHeader = "Grip-Sig"

// DefaultSigIss is the issuer Pushpin writes unless configured otherwise.
const DefaultSigIss = "pushpin"

// sigLifetime is how long a token is valid, as Pushpin's (an hour);
// sigRenew is how often a new one is made, well within it, so that a
// request in flight never carries one about to expire.
const (
	sigLifetime = time.Hour
	sigRenew    = 5 * time.Minute
)

// signer makes and keeps the route's current token.
type signer struct {
	key []byte
	iss string

	mu    sync.Mutex
	token string
	made  time.Time
}

func newSigner(key []byte, iss string) *signer {
	if len(key) == 0 {
		return nil
	}
	if iss == "" {
		iss = DefaultSigIss
	}
	return &signer{key: key, iss: iss}
}

// current returns a token valid for at least sigLifetime - sigRenew.
func (s *signer) current(now time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && now.Sub(s.made) < sigRenew && !now.Before(s.made) {
		return s.token, nil
	}
	claims := jwt.RegisteredClaims{Issuer: s.iss, ExpiresAt: jwt.NewNumericDate(now.Add(sigLifetime))}
	t, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.key)
	if err != nil {
		return "", err
	}
	s.token, s.made = t, now
	return t, nil
}
