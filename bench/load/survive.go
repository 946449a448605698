package load

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Survive opens n connections to each target (ws:// or wss://) and keeps
// them idle for hold, answering every ping as a browser would, then
// checks that every one still echoes. It counts the connections the
// server closed or lost meanwhile (Lost) and those that echoed at the end
// (Count): against a server that pings within its own timeout, a healthy
// client must never be lost, and a loss is a figure to report, not an
// error of the run. rss reads the server's memory before the connections
// and at the end of the hold.
func Survive(targets []string, n int, hold time.Duration, rss func() int64) (Result, error) {
	res := Result{Scenario: "survive", Conns: n * len(targets), FirstLost: -1}
	before := rss()
	var cs []*Conn
	for _, t := range targets {
		part := make([]*Conn, n)
		if err := dialAll(part, t, "", 256, false); err != nil {
			closeAll(cs)
			closeAll(part)
			return res, err
		}
		cs = append(cs, part...)
	}
	defer closeAll(cs)
	start := time.Now()
	type held struct {
		mu     sync.Mutex // writes: pongs and the final echo
		echoed chan struct{}
	}
	hs := make([]*held, len(cs))
	var lost atomic.Int64
	var pongs atomic.Uint64
	var firstLost atomic.Int64
	firstLost.Store(-1)
	payload := []byte("still there?")
	for i, c := range cs {
		h := &held{echoed: make(chan struct{}, 1)}
		hs[i] = h
		go func() {
			for {
				hd, err := c.readHeader()
				var p []byte
				if err == nil {
					p = make([]byte, hd.length)
					_, err = io.ReadFull(c.br, p)
				}
				if err != nil || hd.op() == 0x8 {
					if lost.Add(1) == 1 {
						firstLost.Store(int64(time.Since(start) / time.Millisecond))
					}
					return
				}
				switch {
				case hd.op() == 0x9:
					h.mu.Lock()
					c.NC.Write(Frame(0xA, p, false))
					h.mu.Unlock()
					pongs.Add(1)
				case hd.op() == 0x1 && bytes.Equal(p, payload):
					h.echoed <- struct{}{}
				}
			}
		}()
	}
	time.Sleep(hold)
	res.RSSBefore, res.RSSAfter = before, rss()
	res.Lost, res.Pongs = int(lost.Load()), pongs.Load()
	if ms := firstLost.Load(); ms >= 0 {
		res.FirstLost = float64(ms) / 1000
	}
	// Every connection still answers.
	frame := Frame(0x1, payload, false)
	var echoed atomic.Int64
	forEach(len(cs), 64, func(i int) error {
		h := hs[i]
		h.mu.Lock()
		cs[i].NC.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := cs[i].NC.Write(frame)
		h.mu.Unlock()
		if err != nil {
			return nil // counted below
		}
		select {
		case <-h.echoed:
			echoed.Add(1)
		case <-time.After(30 * time.Second):
		}
		return nil
	})
	res.Count = uint64(echoed.Load())
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}
