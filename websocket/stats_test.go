package websocket

import (
	"testing"
	"testing/synctest"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

func TestStats(t *testing.T) {
	h := newHandler()
	c := newConn(h, Options{})
	tr := &nbRecorder{}
	c.start(tr)
	if err := feedAll(c, ws.Text("hello"), ws.Binary([]byte{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	c.SendText("abc")
	c.Send(BinaryMessage, make([]byte, 10))
	pm := NewPreparedMessage(TextMessage, []byte("to all"))
	c.SendPrepared(pm)
	pm.Release()
	c.Ping([]byte("not counted"))
	err := c.feed(ws.Close(4000, "bye"))
	s := c.Stats()
	if s.MessagesIn != 2 || s.BytesIn != 8 || s.MessagesOut != 3 || s.BytesOut != 19 {
		t.Fatalf("counts %+v", s)
	}
	if s.CloseReceived != (CloseStatus{Code: 4000, Reason: "bye"}) || s.CloseSent != (CloseStatus{Code: 1000}) {
		t.Fatalf("close frames %+v / %+v (feed: %v)", s.CloseReceived, s.CloseSent, err)
	}
}

func TestStatsSlowConsumerAndDrops(t *testing.T) {
	for _, policy := range []SlowConsumerPolicy{SlowConsumerDrop, SlowConsumerClose} {
		tr := &nbRecorder{recorder: recorder{block: make(chan struct{})}}
		c := newConn(newHandler(), Options{MaxQueue: 100, SlowConsumer: policy})
		c.start(tr)
		for range 5 {
			c.Send(BinaryMessage, make([]byte, 60))
		}
		s := c.Stats()
		if policy == SlowConsumerDrop && (s.Dropped == 0 || s.SlowConsumer || s.MessagesOut+s.Dropped != 5) {
			t.Errorf("drop: %+v", s)
		}
		if policy == SlowConsumerClose && (!s.SlowConsumer || s.CloseSent.Code != StatusPolicyViolation) {
			t.Errorf("close: %+v", s)
		}
		tr.Close()
	}
}

// TestMessageTimeout: a peer that stalls in the middle of a message is
// closed with 1008 once the message has been arriving for the timeout; a
// peer sending complete messages, however slowly, is not.
func TestMessageTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newConn(newHandler(), Options{MessageTimeout: 100 * time.Millisecond})
		tr := &nbRecorder{}
		c.start(tr)
		defer c.stop(nil)
		for range 5 { // complete messages, 60ms apart
			c.feed(ws.Text("ok"))
			time.Sleep(60 * time.Millisecond)
		}
		synctest.Wait()
		if c.Closing() {
			t.Fatal("closed although every message was complete")
		}
		frame := ws.Binary(make([]byte, 100))
		c.feed(frame[:len(frame)-50]) // half a message, then nothing
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if c.Closing() {
			t.Fatal("closed before the message timeout")
		}
		time.Sleep(30 * time.Millisecond) // the tick runs every quarter timeout
		synctest.Wait()
		fs := tr.frames(t)
		if len(fs) != 1 || fs[0].Code() != 1008 {
			t.Fatalf("frames %v, want close 1008", fs)
		}
	})
}
