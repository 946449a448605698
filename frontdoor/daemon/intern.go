package daemon

import "sync"

// strings interns the few strings that every connection of a listener
// repeats (the address it was accepted on, the Host the clients send), so
// that an idle connection keeps a reference instead of a copy. Bounded:
// past maxInterned distinct values (a client can send any Host) the rest
// are kept as they are.
type stringTable struct {
	mu sync.Mutex
	m  map[string]string
}

const maxInterned = 1024

func (t *stringTable) intern(s string) string {
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
