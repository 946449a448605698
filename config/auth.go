package config

import (
	"strings"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/auth"
)

// authBlock reads a route's (or the defaults') auth block: one of jwt or
// forward. Its files are read here, so a missing key file is an error of
// wsgate check, named with its line; nothing is fetched.
func authBlock(d *Decoder) gateway.Authenticator {
	if s, ok := d.n.Value, d.IsScalar(); ok && (s == "off" || s == "false") {
		return nil // a route turning off what defaults set
	}
	var a gateway.Authenticator
	n := 0
	d.Fields(map[string]func(*Decoder){
		"jwt":     func(v *Decoder) { n++; a = jwtBlock(v) },
		"forward": func(v *Decoder) { n++; a = forwardBlock(v) },
		"cert":    func(v *Decoder) { n++; a = certBlock(v) },
	})
	if n == 0 && d.IsMapping() {
		d.Errorf("set jwt, forward or cert")
	}
	if n > 1 {
		d.Errorf("set one of jwt, forward and cert")
		return nil
	}
	return a
}

func jwtBlock(d *Decoder) gateway.Authenticator {
	j := &auth.JWT{RequireExp: true}
	mark := d.ErrorCount()
	d.Fields(map[string]func(*Decoder){
		"algorithms":       func(v *Decoder) { j.Algorithms = v.Strings() },
		"secret_file":      func(v *Decoder) { v.String(&j.SecretFile) },
		"key_file":         func(v *Decoder) { v.String(&j.KeyFile) },
		"jwks_url":         func(v *Decoder) { v.String(&j.JWKSURL) },
		"jwks_timeout":     func(v *Decoder) { v.Duration(&j.JWKSTimeout) },
		"jwks_min_refresh": func(v *Decoder) { v.Duration(&j.JWKSMinRefresh) },
		"issuer":           func(v *Decoder) { v.String(&j.Issuer) },
		"audience":         func(v *Decoder) { j.Audience = v.Strings() },
		"leeway":           func(v *Decoder) { v.Duration(&j.Leeway) },
		"require_exp":      func(v *Decoder) { v.Bool(&j.RequireExp) },
		"user_claim":       func(v *Decoder) { v.String(&j.UserClaim) },
		"realm":            func(v *Decoder) { v.String(&j.Realm) },
		"claims": func(v *Decoder) {
			j.Claims = map[string]string{}
			for _, kv := range v.StringMap() {
				k, val, _ := strings.Cut(kv, "=")
				j.Claims[k] = val
			}
		},
		"from": func(v *Decoder) { j.From = carriers(v) },
	})
	return provisioned(d, mark, j)
}

func carriers(d *Decoder) []auth.Carrier {
	var out []auth.Carrier
	for _, item := range d.Items() {
		s, ok := item.Scalar()
		if !ok {
			continue
		}
		c, err := auth.ParseCarrier(s)
		if err != nil {
			item.Errorf("%v", err)
			continue
		}
		out = append(out, c)
	}
	return out
}

func forwardBlock(d *Decoder) gateway.Authenticator {
	f := &auth.Forward{}
	mark := d.ErrorCount()
	d.Fields(map[string]func(*Decoder){
		"url":          func(v *Decoder) { v.String(&f.URL) },
		"headers":      func(v *Decoder) { f.Headers = v.Strings() },
		"copy_headers": func(v *Decoder) { f.CopyHeaders = v.Strings() },
		"user_header":  func(v *Decoder) { v.String(&f.UserHeader) },
		"timeout":      func(v *Decoder) { v.Duration(&f.Timeout) },
		"cache": func(v *Decoder) {
			v.Fields(map[string]func(*Decoder){
				"ttl":  func(v *Decoder) { v.Duration(&f.CacheTTL) },
				"size": func(v *Decoder) { v.Int(1, 1<<24, &f.CacheSize) },
			})
		},
	})
	if !d.Has("url") {
		d.ErrorfIn("url", "forward auth needs the service's url")
	}
	return provisioned(d, mark, f)
}

func certBlock(d *Decoder) gateway.Authenticator {
	c := &auth.Cert{}
	if d.IsMapping() {
		d.Fields(map[string]func(*Decoder){"user": func(v *Decoder) { v.String(&c.User) }})
	} else if s, ok := d.Scalar(); ok && s != "true" && s != "on" {
		d.Errorf("must be true or a mapping with user")
		return nil
	}
	return provisioned(d, d.ErrorCount(), c)
}

// provisioned finishes an auth block: if reading it reported nothing
// since mark, it provisions a and reports each of its errors against the
// block; it returns a, or nil when the block is unusable.
func provisioned(d *Decoder, mark int, a interface {
	gateway.Authenticator
	Provision() error
}) gateway.Authenticator {
	if d.ErrorCount() != mark {
		return nil
	}
	if err := a.Provision(); err != nil {
		for _, e := range Errors(err) {
			d.Errorf("%v", e)
		}
		return nil
	}
	return a
}
