package websocket

import (
	"slices"
	"testing"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

type feedResult struct {
	msgs   []msg
	out    []ws.Received
	failed bool
}

func runFeed(t *testing.T, data []byte, cuts []int, d *deflateParams) feedResult {
	h := newHandler()
	c := newConn(h, Options{MaxMessageSize: 1 << 16, deflate: d})
	tr := &nbRecorder{}
	c.start(tr)
	var err error
	prev := 0
	for _, cut := range append(cuts, len(data)) {
		if cut < prev || cut > len(data) {
			continue
		}
		if err = c.feed(append([]byte(nil), data[prev:cut]...)); err != nil {
			break
		}
		prev = cut
	}
	return feedResult{msgs: h.messages(), out: tr.frames(t), failed: err != nil}
}

// FuzzFeed drives the frame parser with arbitrary bytes. It must never
// panic, and how the bytes are cut into reads must not change anything the
// application or the peer sees.
func FuzzFeed(f *testing.F) {
	seeds := [][]byte{
		ws.Text("Hello"),
		ws.Concat(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("Hel")}.Bytes(), ws.Ping([]byte("x")), ws.Cont(true, []byte("lo"))),
		ws.Close(1000, "bye"),
		ws.Text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
		ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1<<63 - 1}.Bytes(),
		ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte("unmasked")}.Bytes(),
		ws.Binary(make([]byte, 300)),
	}
	for i, s := range seeds {
		f.Add(s, uint16(i*3), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16) { splitInvariance(t, data, a, b, nil) })
}

// FuzzFeedDeflate is FuzzFeed on a connection that negotiated
// permessage-deflate with context takeover, so RSV1 frames are inflated.
func FuzzFeedDeflate(f *testing.F) {
	cl := newClient(true, 15)
	f.Add(compressedFrames(ws.OpText, cl.compress([]byte("hello hello hello")), 0), uint16(3), uint16(9))
	f.Add(ws.Concat(compressedFrames(ws.OpBinary, cl.compress(make([]byte, 500)), 4), ws.Text("plain")), uint16(1), uint16(20))
	f.Add(ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpCont, Masked: true, Payload: []byte{1, 2}}.Bytes(), uint16(0), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16) {
		splitInvariance(t, data, a, b, &deflateParams{ServerNoContextTakeover: true, ServerWindowBits: 15, ClientWindowBits: 15, Threshold: 1 << 30})
	})
}

func splitInvariance(t *testing.T, data []byte, a, b uint16, d *deflateParams) {
	whole := runFeed(t, data, nil, d)
	cuts := []int{int(a) % (len(data) + 1), int(b) % (len(data) + 1)}
	slices.Sort(cuts)
	split := runFeed(t, data, cuts, d)
	if !slices.Equal(whole.msgs, split.msgs) {
		t.Fatalf("messages differ: whole %v, split at %v %v", short(whole.msgs), cuts, short(split.msgs))
	}
	if whole.failed != split.failed || len(whole.out) != len(split.out) {
		t.Fatalf("outcome differs: whole %v %v, split %v %v", whole.failed, whole.out, split.failed, split.out)
	}
	for i := range whole.out {
		if whole.out[i].Op != split.out[i].Op || string(whole.out[i].Payload) != string(split.out[i].Payload) {
			t.Fatalf("frame %d differs: %v vs %v", i, whole.out[i], split.out[i])
		}
	}
}
