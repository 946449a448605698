package testserver

import (
	"os/exec"
	"strings"
	"testing"
)

// SignHS256 makes an HS256 token for claims (a JSON object) with PyJWT
// (Debian's python3-jwt), an issuer independent of wsgate's code: exp is
// five minutes ahead unless claims set it.
func SignHS256(t testing.TB, secret, claims string) string {
	t.Helper()
	out, err := exec.Command(Python(t), "-c", `import jwt, json, sys, time
c = json.loads(sys.argv[2])
c.setdefault("exp", int(time.time()) + 300)
print(jwt.encode(c, sys.argv[1], algorithm="HS256"))`, secret, claims).Output()
	if err != nil {
		t.Fatalf("PyJWT: %v", err)
	}
	return strings.TrimSpace(string(out))
}
