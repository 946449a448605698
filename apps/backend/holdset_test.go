package backend

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway"
)

// TestHeldSetMatchesHolds: a client is in the held set exactly while it
// is held, whatever the order in which a hold (a drain, a failing link)
// and the end of another hold (a resumption attaching it, an expiry)
// meet. A client resumed in the moment a failing link held it again was
// left in the set although carried: counted held for ever, which is how
// TestRestartKeepsClients/chat/handover waited for Held 0 in vain.
func TestHeldSetMatchesHolds(t *testing.T) {
	be, err := New(Config{Address: "/nonexistent", Hold: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	be.rt = &gateway.Route{}
	const n = 100000
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = &client{}
	}
	// One goroutine holds each client (a drain, a link ending); the other
	// ends that hold the moment it sees it (a resumption attaching the
	// client), which is where the two used to cross.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, cl := range clients {
			be.hold(cl, time.Hour, nil)
		}
	}()
	go func() {
		defer wg.Done()
		for _, cl := range clients {
			for spin := 0; spin < 1e6; spin++ {
				cl.mu.Lock()
				h := cl.held
				cl.held = nil
				cl.mu.Unlock()
				if h != nil {
					be.unhold(cl, h)
					break
				}
				runtime.Gosched()
			}
		}
	}()
	wg.Wait()
	bad := 0
	for _, cl := range clients {
		be.hmu.Lock()
		_, in := be.set[cl]
		be.hmu.Unlock()
		if in != (cl.held != nil) {
			bad++
		}
		if h := cl.held; h != nil {
			cl.held = nil
			be.unhold(cl, h)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d clients in the held set while not held, or held outside it", bad, n)
	}
	if l := be.Links(); l.Held != 0 {
		t.Errorf("held %d after every hold ended, want 0", l.Held)
	}
}
