package load

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// echoConns is the echo loop for connections that are not bare sockets
// (wss: the client's TLS runs in crypto/tls): a goroutine per connection
// sends the frame and reads the whole echo, until d has passed or limit
// echoes are done. It costs the client more per echo than echoLoop, so
// compare servers only with each other under it.
func echoConns(cs []*Conn, frame []byte, d time.Duration, limit int64) (int64, *Hist, time.Duration, error) {
	var (
		count atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	h := new(Hist)
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := new(Hist)
			defer func() {
				mu.Lock()
				h.Merge(own)
				mu.Unlock()
			}()
			c.NC.SetDeadline(deadline.Add(10 * time.Second))
			for !stop.Load() {
				t0 := time.Now()
				if _, err := c.NC.Write(frame); err != nil {
					fail(&mu, &first, fmt.Errorf("connection %d: write: %w", i, err))
					return
				}
				if _, _, err := c.ReadPayload(); err != nil {
					fail(&mu, &first, fmt.Errorf("connection %d: read: %w", i, err))
					return
				}
				if stop.Load() {
					return
				}
				own.Record(time.Since(t0))
				n := count.Add(1)
				if (limit > 0 && n >= limit) || time.Now().After(deadline) {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return count.Load(), h, elapsed, first
	}
	return count.Load(), h, elapsed, nil
}

func fail(mu *sync.Mutex, first *error, err error) {
	mu.Lock()
	if *first == nil {
		*first = err
	}
	mu.Unlock()
}
