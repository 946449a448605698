package auth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/gateway"
)

// The parts of auth that are wsgate's own rather than a library's: where
// a token is found in a request, the cache headers of a JWKS answer, and
// the key set's outer shape (each key is go-jose's to read). Token
// verification is golang-jwt's and is not fuzzed here.

// FuzzToken: finding a token never panics, never returns one that is not
// in the request, and takes a subprotocol-carried one out of the offer.
func FuzzToken(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "access_token=x.y.z&b=2", "jwt=a.b.c; other=1", "chat, bearer.a.b.c")
	f.Add("Basic Zm9vOmJhcg==", "access_token=%zz", "jwt=", "bearer.")
	f.Add("bearer    spaced  ", "access_token=a+b%20c", "=;;", ",,,")
	from := []Carrier{{Kind: "header"}, {Kind: "query", Name: "access_token"}, {Kind: "cookie", Name: "jwt"}, {Kind: "subprotocol", Name: "bearer."}}
	f.Fuzz(func(t *testing.T, authz, query, cookie, protos string) {
		req := &gateway.Request{RawQuery: query}
		h := http.Header{}
		for k, v := range map[string]string{"Authorization": authz, "Cookie": cookie, "Sec-Websocket-Protocol": protos} {
			if v != "" {
				h.Set(k, v)
			}
		}
		req.SetHeader(h)
		for _, p := range strings.Split(protos, ",") {
			if p = strings.TrimSpace(p); p != "" {
				req.Protocols = append(req.Protocols, p)
			}
		}
		before := len(req.Protocols)
		tok, _ := token(req, from)
		if tok == "" {
			return
		}
		inRequest := strings.Contains(authz, tok) || strings.Contains(cookie, tok) || strings.Contains(protos, tok) || query != ""
		if !inRequest {
			t.Fatalf("token %q is nowhere in the request", tok)
		}
		if fromOther := strings.Contains(authz, tok) || strings.Contains(cookie, tok) || query != ""; !fromOther && len(req.Protocols) != before-1 {
			t.Fatalf("the token came from the offer, which still has it: %q", req.Protocols)
		}
		if len(req.Protocols) > before {
			t.Fatalf("protocols grew: %q", req.Protocols)
		}
	})
}

// FuzzJWKSAnswer: any Cache-Control or Expires gives an age, never a
// panic; parseJWKS never panics and keeps no key without a type
// wsgate verifies with.
func FuzzJWKSAnswer(f *testing.F) {
	f.Add("max-age=300", "", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"a"}]}`)
	f.Add("no-cache, max-age=10", "Wed, 21 Oct 2015 07:28:00 GMT", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	f.Add(`max-age="5"`, "0", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)
	f.Add("max-age=-1", "garbage", `{"keys":null}`)
	f.Fuzz(func(t *testing.T, cc, expires, body string) {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		if expires != "" {
			h.Set("Expires", expires)
		}
		cacheAge(h)
		keys, err := parseJWKS([]byte(body), false)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no key")
		}
		for _, k := range keys {
			if _, secret := k.Key.([]byte); secret {
				t.Fatal("a symmetric key from a published set")
			}
		}
	})
}
