package daemon

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wsgate/wsgate/config"
)

// Who may use the admin listener:
//
//   - /healthz and /readyz: anyone who reaches it (probes carry no
//     credentials).
//   - Reads (/metrics, /status.json, the status page and its WebSocket):
//     anyone without admin.auth; with it, only authenticated clients,
//     unless admin.auth.public_reads.
//   - Control (POST /reload, /publish/): only authenticated clients; with
//     no admin.auth, only on a UNIX socket (created 0600: its mode
//     decides who may connect). On TCP without auth any local user, or a
//     remote one off loopback, could reload the daemon or publish to
//     every room, so control is refused (403) and says how to allow it.
//
// Any one of the configured ways authenticates: a bearer token, a
// user and password from a bcrypt file, or a client certificate that
// admin.tls's client_ca verified.
type adminAuth struct {
	token   []byte
	users   map[string][]byte // user → bcrypt hash
	certs   bool
	public  bool
	realm   string
	cmpSlot chan struct{} // one bcrypt comparison at a time
	mu      sync.Mutex
	good    map[[32]byte]time.Time // credentials bcrypt accepted, until
}

// basicGrace is how long credentials bcrypt accepted are accepted again
// without it: a scraper every 15 s costs one comparison a minute, and a
// flood of wrong passwords cannot use more than one core's comparisons.
const basicGrace = time.Minute

func newAdminAuth(a *config.AdminAuth) (*adminAuth, error) {
	if a == nil {
		return nil, nil
	}
	aa := &adminAuth{certs: a.ClientCertificates, public: a.PublicReads, cmpSlot: make(chan struct{}, 1), good: map[[32]byte]time.Time{}}
	if a.BearerTokenFile != "" {
		tok, err := config.ReadAdminToken(a.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		aa.token = []byte(tok)
	}
	if a.BasicFile != "" {
		users, err := config.ReadBasicFile(a.BasicFile)
		if err != nil {
			return nil, err
		}
		aa.users = users
	}
	aa.realm = `Bearer realm="wsgate admin"`
	if aa.users != nil {
		aa.realm = `Basic realm="wsgate admin", charset="UTF-8"`
	}
	return aa, nil
}

// allowed says whether r proves who sends it.
func (aa *adminAuth) allowed(r *http.Request) bool {
	if aa.certs && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	h := r.Header.Get("Authorization")
	if aa.token != nil {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(t)), aa.token) == 1 {
			return true
		}
	}
	if aa.users != nil {
		if user, pass, ok := r.BasicAuth(); ok {
			return aa.checkBasic(user, pass)
		}
	}
	return false
}

func (aa *adminAuth) checkBasic(user, pass string) bool {
	hash, ok := aa.users[user]
	if !ok {
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := time.Now()
	aa.mu.Lock()
	until, seen := aa.good[key]
	aa.mu.Unlock()
	if seen && now.Before(until) {
		return true
	}
	aa.cmpSlot <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-aa.cmpSlot
	if err != nil {
		return false
	}
	aa.mu.Lock()
	if len(aa.good) >= 64 {
		clear(aa.good)
	}
	aa.good[key] = now.Add(basicGrace)
	aa.mu.Unlock()
	return true
}

// probe says whether r is a health probe, open to all.
func probe(r *http.Request) bool { return r.URL.Path == "/healthz" || r.URL.Path == "/readyz" }
