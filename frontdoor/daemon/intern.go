package daemon

import "sync"

// stringTable interns the few strings that every connection of a
// listener repeats (the address it was accepted on, the Host the clients
// send), so that an idle connection keeps a reference instead of a copy.
// Bounded, since a client can send any Host: strings longer than
// maxInternLen, and any past maxInterned distinct values, are kept as
// they are (256 KiB at most in the table).
type stringTable struct {
	mu sync.Mutex
	m  map[string]string
}

const (
	maxInterned  = 1024
	maxInternLen = 256 // a host name (253) and a port
)

func (t *stringTable) intern(s string) string {
	if len(s) > maxInternLen {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[s]; ok {
		return v
	}
	if t.m == nil {
		t.m = map[string]string{}
	}
	if len(t.m) < maxInterned {
		t.m[s] = s
	}
	return s
}
