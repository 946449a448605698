package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/gateway"
)

// JWT authenticates clients by a JSON Web Token (RFC 7519) signed with one
// of Algorithms. The algorithm is the configuration's choice, never the
// token's: a token whose alg is not listed (none included) is refused
// before any key is looked at, and each key is used only for the
// algorithms of its own type, so an RSA public key can never become an
// HMAC secret (the classic confusion).
//
// Set it up with the exported fields, then call Provision once.
type JWT struct {
	// Algorithms are the accepted signature algorithms: HS256, HS384,
	// HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
	// ES512, EdDSA.
	Algorithms []string `json:"algorithms"`
	// SecretFile holds the HMAC secret, for the HS algorithms.
	SecretFile string `json:"secret_file,omitempty"`
	// KeyFile holds public keys (PEM, or a JSON Web Key Set) for the
	// others; JWKSURL is where the issuer publishes them instead.
	KeyFile string `json:"key_file,omitempty"`
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWKSTimeout bounds a fetch; JWKSMinRefresh is the least time
	// between two fetches for an unknown kid.
	JWKSTimeout    time.Duration `json:"jwks_timeout,omitempty"`
	JWKSMinRefresh time.Duration `json:"jwks_min_refresh,omitempty"`
	// Issuer and Audience, when set, must match iss and one of aud.
	Issuer   string   `json:"issuer,omitempty"`
	Audience []string `json:"audience,omitempty"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration `json:"leeway,omitempty"`
	// RequireExp refuses tokens without exp: a token that never expires
	// keeps its connection open for ever.
	RequireExp bool `json:"require_exp"`
	// Claims the token must have to be let in (403 otherwise): a claim
	// with an empty value must be present; otherwise it must equal the
	// value, or, for a list or a space-separated string (OAuth's scope),
	// contain it.
	Claims map[string]string `json:"claims,omitempty"`
	// UserClaim names the user (Identity.User): sub by default.
	UserClaim string `json:"user_claim,omitempty"`
	// From are where the token is looked for, in order (see Carrier).
	From []Carrier `json:"from"`
	// Realm is the realm of WWW-Authenticate.
	Realm string `json:"realm,omitempty"`
	// Files is a digest of the secret and key files as read, so that a
	// reload after they change (same names, new keys) makes the route
	// again: the route's key is its policy's JSON.
	Files string `json:"files,omitempty"`

	secret []byte
	keys   *keySet
	parser *jwt.Parser
}

var _ gateway.Authenticator = (*JWT)(nil)

// Algorithms wsgate verifies.
var jwtAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA"}

// Provision checks the configuration and reads its files; it fetches
// nothing.
func (j *JWT) Provision() error {
	var errs []error
	if len(j.Algorithms) == 0 {
		errs = append(errs, errors.New("algorithms: list the accepted ones (for example [RS256]); the token never chooses"))
	}
	hmac, public := false, false
	for _, a := range j.Algorithms {
		switch {
		case !slices.Contains(jwtAlgorithms, a):
			errs = append(errs, fmt.Errorf("algorithms: %q is not one of %s", a, strings.Join(jwtAlgorithms, ", ")))
		case strings.HasPrefix(a, "HS"):
			hmac = true
		default:
			public = true
		}
	}
	if hmac {
		if j.SecretFile == "" {
			errs = append(errs, errors.New("secret_file: the HS algorithms need the shared secret"))
		} else if b, err := os.ReadFile(j.SecretFile); err != nil {
			errs = append(errs, fmt.Errorf("secret_file: %v", err))
		} else if j.secret = []byte(strings.TrimRight(string(b), "\r\n")); len(j.secret) < 32 {
			errs = append(errs, fmt.Errorf("secret_file: %s holds %d bytes; an HMAC secret needs at least 32 (RFC 7518 §3.2)", j.SecretFile, len(j.secret)))
		}
	} else if j.SecretFile != "" {
		errs = append(errs, errors.New("secret_file: set, but no HS algorithm is listed"))
	}
	switch {
	case public && j.KeyFile == "" && j.JWKSURL == "":
		errs = append(errs, errors.New("key_file or jwks_url: the public-key algorithms need the issuer's keys"))
	case public && j.KeyFile != "" && j.JWKSURL != "":
		errs = append(errs, errors.New("set key_file or jwks_url, not both"))
	case !public && (j.KeyFile != "" || j.JWKSURL != ""):
		errs = append(errs, errors.New("key_file and jwks_url need a public-key algorithm (RS, PS, ES or EdDSA)"))
	case j.KeyFile != "":
		keys, err := readKeyFile(j.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("key_file: %v", err))
		}
		j.keys = staticKeys(keys)
	case j.JWKSURL != "":
		if !strings.HasPrefix(j.JWKSURL, "https://") && !strings.HasPrefix(j.JWKSURL, "http://") {
			errs = append(errs, fmt.Errorf("jwks_url: %q is not an http or https URL", j.JWKSURL))
		}
		if j.JWKSTimeout <= 0 {
			j.JWKSTimeout = DefaultJWKSTimeout
		}
		if j.JWKSMinRefresh <= 0 {
			j.JWKSMinRefresh = DefaultJWKSMinRefresh
		}
		j.keys = newKeySet(j.JWKSURL, j.JWKSTimeout, j.JWKSMinRefresh)
	}
	if j.UserClaim == "" {
		j.UserClaim = "sub"
	}
	if len(j.From) == 0 {
		j.From = []Carrier{{Kind: "header"}}
	}
	if j.Realm == "" {
		j.Realm = "wsgate"
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(j.Algorithms), jwt.WithLeeway(j.Leeway), jwt.WithIssuedAt()}
	if j.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(j.Issuer))
	}
	if len(j.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(j.Audience...))
	}
	if j.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	j.parser = jwt.NewParser(opts...)
	d := sha256.New()
	d.Write(j.secret)
	if j.KeyFile != "" {
		b, _ := os.ReadFile(j.KeyFile)
		d.Write(b)
	}
	j.Files = hex.EncodeToString(d.Sum(nil)[:8])
	return errors.Join(errs...)
}

// Authenticate finds the token, verifies it and checks its claims.
func (j *JWT) Authenticate(ctx context.Context, req *gateway.Request) (*gateway.Identity, error) {
	t, malformed := token(req, j.From)
	if t == "" {
		if malformed {
			return nil, j.refuse(http.StatusUnauthorized, gateway.CauseAuthInvalid, "invalid_request", "the Authorization header is not a Bearer token")
		}
		return nil, &gateway.AuthError{Status: http.StatusUnauthorized, Cause: gateway.CauseAuthMissing,
			Reason: "no token (looked in " + carriers(j.From) + ")", Header: challenge(j.Realm, "", "")}
	}
	claims := jwt.MapClaims{}
	_, err := j.parser.ParseWithClaims(t, claims, func(tok *jwt.Token) (any, error) { return j.key(ctx, tok) })
	switch {
	case err == nil:
	case errors.Is(err, errNoKeys):
		return nil, &gateway.AuthError{Status: http.StatusServiceUnavailable, Cause: gateway.CauseAuthUnavailable,
			Reason: "no verification keys could be fetched from " + j.JWKSURL, Header: http.Header{"Retry-After": {"5"}}}
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, j.refuse(http.StatusUnauthorized, gateway.CauseAuthExpired, "invalid_token", "the token has expired")
	default:
		return nil, j.refuse(http.StatusUnauthorized, gateway.CauseAuthInvalid, "invalid_token", describe(err))
	}
	for name, want := range j.Claims {
		if !gateway.HasClaim(claims, name, want) {
			return nil, j.refuse(http.StatusForbidden, gateway.CauseAuthForbidden, "insufficient_scope", "the token lacks claim "+name)
		}
	}
	id := &gateway.Identity{User: gateway.ClaimText(claims[j.UserClaim]), Method: "Bearer", Claims: claims}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.Expires = exp.Add(j.Leeway)
	}
	return id, nil
}

func (j *JWT) refuse(status int, cause, code, desc string) *gateway.AuthError {
	return &gateway.AuthError{Status: status, Cause: cause, Reason: desc, Header: challenge(j.Realm, code, desc)}
}

// key returns the keys that may verify tok: the secret for HS, else the
// keys of the type tok's algorithm needs (and, for a key that names its
// alg, that one), the one with tok's kid when it has one.
func (j *JWT) key(ctx context.Context, tok *jwt.Token) (any, error) {
	alg := tok.Method.Alg()
	if strings.HasPrefix(alg, "HS") {
		return j.secret, nil
	}
	kid, _ := tok.Header["kid"].(string)
	keys, err := j.keys.candidates(ctx, kid)
	if err != nil {
		return nil, err
	}
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if (k.Algorithm == "" || k.Algorithm == alg) && fits(alg, k.Key) {
			set.Keys = append(set.Keys, k.Key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	return set, nil
}

// fits says whether key is of the type alg verifies with.
func fits(alg string, key any) bool {
	switch alg[:2] {
	case "RS", "PS":
		_, ok := key.(*rsa.PublicKey)
		return ok
	case "ES":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
	case "Ed":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// describe is a short reason for a refused token, for the log and
// error_description; never the token.
func describe(err error) string {
	for _, e := range []struct {
		err  error
		text string
	}{
		{jwt.ErrTokenMalformed, "the token is malformed"},
		{jwt.ErrTokenSignatureInvalid, "the signature is not valid"},
		{jwt.ErrTokenNotValidYet, "the token is not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "the token was issued in the future"},
		{jwt.ErrTokenInvalidIssuer, "the issuer is not accepted"},
		{jwt.ErrTokenInvalidAudience, "the audience is not accepted"},
		{jwt.ErrTokenRequiredClaimMissing, "the token has no exp"},
		{errUnknownKid, "no key has the token's kid"},
	} {
		if errors.Is(err, e.err) {
			return e.text
		}
	}
	if errors.Is(err, jwt.ErrTokenUnverifiable) || errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return "the token cannot be verified: " + strings.TrimPrefix(err.Error(), "token is unverifiable: ")
	}
	return "the token is not valid"
}

func carriers(from []Carrier) string {
	s := make([]string, len(from))
	for i, c := range from {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}
