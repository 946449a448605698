package backend

import (
	"runtime"
	"testing"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/bufpool"
)

// BenchmarkHeldClientCost reports the heap a client adds by being held
// (its hold state, its timer, its place in the set) and with one 16-byte
// message waiting, over what it costs carried.
//
//	go test ./apps/backend -run '^$' -bench HeldClientCost
func BenchmarkHeldClientCost(b *testing.B) {
	const n = 10000
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for range b.N {
		be, err := New(Config{Address: "/nonexistent", Hold: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		be.rt = &gateway.Route{}
		clients := make([]*client, n)
		for i := range clients {
			clients[i] = &client{}
		}
		before := heap()
		for _, cl := range clients {
			be.hold(cl, time.Hour, nil)
		}
		held := heap()
		for _, cl := range clients {
			buf := bufpool.Get(wire.MessageHeaderSize + 16)
			*buf = wire.AppendMessage(*buf, wire.TypeMessage, 1, wire.KindText, []byte("0123456789abcdef"))
			cl.mu.Lock()
			be.queueHeld(cl, buf)
			cl.mu.Unlock()
		}
		queued := heap()
		b.ReportMetric(float64(held-before)/n, "B/held-client")
		b.ReportMetric(float64(queued-held)/n, "B/queued-message")
		for _, cl := range clients {
			cl.mu.Lock()
			h := cl.held
			cl.held = nil
			cl.mu.Unlock()
			be.unhold(cl, h)
		}
		runtime.KeepAlive(clients)
	}
}
