package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"

	"github.com/wsgate/wsgate/gateway"
)

// Cert authenticates clients by the certificate their TLS listener
// verified (tls: {client_ca, client_auth}; see the README): the route
// lets in only a client whose certificate chains to the listener's
// client CAs, and names it from the certificate. A listener with
// client_auth: optional serves routes with and without this auth on one
// port.
type Cert struct {
	// User says where the user's name is: subject.cn (the default),
	// san.email, san.dns, san.uri (the first of each), or subject (the
	// whole distinguished name, as RFC 4514 writes it).
	User string `json:"user"`
}

var _ gateway.Authenticator = (*Cert)(nil)

// Places Cert.User may name.
var certUsers = []string{"subject.cn", "subject", "san.email", "san.dns", "san.uri"}

// Provision checks the configuration.
func (c *Cert) Provision() error {
	if c.User == "" {
		c.User = "subject.cn"
	}
	for _, u := range certUsers {
		if c.User == u {
			return nil
		}
	}
	return fmt.Errorf("user: %q is not one of %s", c.User, strings.Join(certUsers, ", "))
}

// Authenticate names the client by its verified certificate.
func (c *Cert) Authenticate(_ context.Context, req *gateway.Request) (*gateway.Identity, error) {
	if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 || len(req.TLS.VerifiedChains[0]) == 0 {
		reason := "no client certificate"
		if req.TLS == nil {
			reason = "not a TLS connection"
		}
		return nil, &gateway.AuthError{Status: http.StatusUnauthorized, Cause: gateway.CauseAuthMissing, Reason: reason}
	}
	leaf := req.TLS.VerifiedChains[0][0]
	user := certUser(leaf, c.User)
	if user == "" {
		return nil, &gateway.AuthError{Status: http.StatusForbidden, Cause: gateway.CauseAuthForbidden,
			Reason: "the client certificate has no " + c.User}
	}
	claims := map[string]any{
		"subject": leaf.Subject.String(),
		"issuer":  leaf.Issuer.String(),
		"serial":  leaf.SerialNumber.Text(16),
	}
	if len(leaf.EmailAddresses) > 0 {
		claims["san_email"] = leaf.EmailAddresses
	}
	if len(leaf.DNSNames) > 0 {
		claims["san_dns"] = leaf.DNSNames
	}
	// The connection ends when the certificate does, as a token's does.
	return &gateway.Identity{User: user, Method: "Cert", Claims: claims, Expires: leaf.NotAfter}, nil
}

func certUser(leaf *x509.Certificate, where string) string {
	switch where {
	case "subject":
		return leaf.Subject.String()
	case "san.email":
		if len(leaf.EmailAddresses) > 0 {
			return leaf.EmailAddresses[0]
		}
	case "san.dns":
		if len(leaf.DNSNames) > 0 {
			return leaf.DNSNames[0]
		}
	case "san.uri":
		if len(leaf.URIs) > 0 {
			return leaf.URIs[0].String()
		}
	default:
		return leaf.Subject.CommonName
	}
	return ""
}
