package natsbus_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/gateway/natsbus"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/natstest"
	"github.com/wsgate/wsgate/testkit/testserver"
)

func clusterConf(urls []string, extra string) string {
	var q []string
	for _, u := range urls {
		q = append(q, strconv.Quote(u))
	}
	return fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
cluster: {nats: [%s]%s}
routes:
  - {path: /chat, app: chat}
`, strings.Join(q, ", "), extra)
}

// connectEach opens n clients of path on each daemon, each with a
// receiver.
func connectEach(t *testing.T, ds []*testserver.Server, path string, n int) ([]*websocket.Conn, []*receiver) {
	var clients []*websocket.Conn
	var rs []*receiver
	for _, d := range ds {
		for range n {
			c := dial(t, d.URL(path))
			clients = append(clients, c)
			rs = append(rs, receive(c))
		}
	}
	return clients, rs
}

func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitPeers waits until every daemon hears from the others.
func waitPeers(t testing.TB, ds []*testserver.Server) {
	if !testserver.WaitFor(10*time.Second, func() bool {
		for _, d := range ds {
			st, _ := d.Gateway().ClusterStats()
			if !st.Connected || st.Peers < len(ds)-1 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the daemons did not find each other on the bus")
	}
}

// receiver reads a client's messages "sender:n", checking that each
// sender's numbers only go up and that nothing comes twice.
type receiver struct {
	c    *websocket.Conn
	mu   sync.Mutex
	last map[int]int
	got  int
	err  error
	done chan struct{}
	ends map[int]bool // the senders whose "end:N" came
}

func receive(c *websocket.Conn) *receiver {
	r := &receiver{c: c, last: map[int]int{}, done: make(chan struct{}), ends: map[int]bool{}}
	go func() {
		defer close(r.done)
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			var from, n int
			if _, err := fmt.Sscanf(string(p), "end:%d", &from); err == nil {
				r.mu.Lock()
				r.ends[from] = true
				r.mu.Unlock()
				continue
			}
			if _, err := fmt.Sscanf(string(p), "%d:%d", &from, &n); err != nil {
				continue
			}
			r.mu.Lock()
			if last, ok := r.last[from]; ok && n <= last && r.err == nil {
				r.err = fmt.Errorf("from %d: %d after %d (a duplicate or out of order)", from, n, last)
			}
			r.last[from] = n
			r.got++
			r.mu.Unlock()
		}
	}()
	return r
}

// expectAll waits until every receiver has want messages, then checks
// that none came twice, out of order, or in excess: each sender sends
// "end:i" last, and a message in excess would come before it.
func expectAll(t *testing.T, rs []*receiver, senders []*websocket.Conn, want int) {
	t.Helper()
	if !testserver.WaitFor(30*time.Second, func() bool {
		for _, r := range rs {
			if r.count() < want {
				return false
			}
		}
		return true
	}) {
		for i, r := range rs {
			t.Errorf("client %d got %d of %d", i, r.count(), want)
		}
	}
	for i, c := range senders {
		c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "end:%d", i))
	}
	if !testserver.WaitFor(30*time.Second, func() bool {
		for _, r := range rs {
			r.mu.Lock()
			n := len(r.ends)
			r.mu.Unlock()
			if n < len(senders) {
				return false
			}
		}
		return true
	}) {
		t.Error("the senders' last messages did not all arrive")
	}
	for i, r := range rs {
		r.mu.Lock()
		if r.err != nil || r.got != want {
			t.Errorf("client %d: %d messages, want %d: %v", i, r.got, want, r.err)
		}
		r.mu.Unlock()
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

// TestChatAcrossDaemons: three daemons on a three-node NATS cluster, two
// chat clients each, 10,002 messages: each reaches every client once, in
// each sender's order.
func TestChatAcrossDaemons(t *testing.T) {
	nats := natstest.StartCluster(t, 3)
	var ds []*testserver.Server
	for i := range 3 {
		ds = append(ds, testserver.Start(t, clusterConf([]string{nats[i].URL()}, ", name: node"+strconv.Itoa(i))))
	}
	waitPeers(t, ds)
	clients, rs := connectEach(t, ds, "/chat", 2)
	const per = 1667 // × 6 senders
	sendAll(clients, 0, per, 0)
	expectAll(t, rs, clients, per*len(clients))
	// Each of a node's two clients sent per messages and its "end".
	const sent = per + 1
	for i, d := range ds {
		st, _ := d.Gateway().ClusterStats()
		if st.Lost != 0 || st.Duplicates != 0 || st.PublishFailed != 0 || st.Published != 2*sent || st.Received != 4*sent {
			t.Errorf("node %d: %+v", i, st)
		}
	}
	// The same, as Prometheus sees it.
	resp, err := http.Get("http://" + ds[0].AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"wsgate_cluster_connected 1\n", "wsgate_cluster_peers 2\n",
		fmt.Sprintf("wsgate_cluster_messages_total{direction=\"published\"} %d\n", 2*sent),
		fmt.Sprintf("wsgate_cluster_messages_total{direction=\"received\"} %d\n", 4*sent),
		"wsgate_cluster_lost_messages_total{where=\"receive\"} 0\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestProducerRoomAcrossDaemons: one producer behind three daemons keeps
// its clients in a room; what it sends to the room through one daemon
// reaches the members on all three, once each, in order; and it can count
// the room across the cluster.
func TestProducerRoomAcrossDaemons(t *testing.T) {
	nats := natstest.StartCluster(t, 3)
	sock := filepath.Join(t.TempDir(), "room.sock")
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &producer.Server{Handler: roomProducer{}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	var ds []*testserver.Server
	for i := range 3 {
		ds = append(ds, testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
cluster: {nats: [%q]}
routes:
  - {path: /room, backend: {socket: %s}}
`, nats[i].URL(), sock)))
	}
	waitPeers(t, ds)
	clients, rs := connectEach(t, ds, "/room", 2)
	const per = 1667
	sendAll(clients, 0, per, 0)
	expectAll(t, rs, clients, per*len(clients))
	// The producer counts the room across the cluster.
	clients[0].WriteMessage(websocket.TextMessage, []byte("count"))
	if !testserver.WaitFor(5*time.Second, func() bool { return counted.Load() == "6 on 3 nodes" }) {
		t.Errorf("the producer's count: %v, want 6 on 3 nodes", counted.Load())
	}
}

var counted atomic.Value

// roomProducer puts every client in "lobby" and sends each message to
// the lobby; "count" asks the gateway to count the lobby.
type roomProducer struct{}

func (roomProducer) OnOpen(c *producer.Client, _ *producer.Accept) error {
	c.Join("lobby")
	return nil
}

func (roomProducer) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	if string(data) == "count" {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, nodes, err := c.Count(ctx, "lobby")
			if err != nil {
				counted.Store(err.Error())
				return
			}
			counted.Store(fmt.Sprintf("%d on %d nodes", n, nodes))
		}()
		return
	}
	c.SendRoom("lobby", typ, data, false)
}

func (roomProducer) OnClose(*producer.Client, uint16, string) {}

// sendAll has each client send msgs numbered messages, pausing every 100
// so that the run spans the fault.
func sendAll(clients []*websocket.Conn, from, msgs int, pause time.Duration) {
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := from; n < from+msgs; n++ {
				c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d:%d", i, n))
				if n%100 == 99 {
					time.Sleep(pause)
				}
			}
		}()
	}
	wg.Wait()
}

// TestNATSNodeDies: one of the three NATS servers is killed in the middle
// of a run. Its daemon reconnects to another; no client sees a message
// twice or out of order; delivery resumes; and every message a node did
// not get is counted on that node.
func TestNATSNodeDies(t *testing.T) {
	nats := natstest.StartCluster(t, 3)
	var urls []string
	for _, n := range nats {
		urls = append(urls, n.URL())
	}
	var ds []*testserver.Server
	for i := range 3 {
		// Each daemon starts on its own NATS server and knows the others.
		order := append([]string{urls[i]}, append(append([]string{}, urls[:i]...), urls[i+1:]...)...)
		ds = append(ds, testserver.Start(t, clusterConf(order, ", name: node"+strconv.Itoa(i))))
	}
	waitPeers(t, ds)
	clients, rs := connectEach(t, ds, "/chat", 1)
	killed := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		nats[0].Stop()
		close(killed)
	}()
	sendAll(clients, 0, 2000, 20*time.Millisecond)
	<-killed
	waitPeers(t, ds) // node 0 is back on another NATS server
	// After the fault: everything arrives again, and the last message of
	// each sender makes every earlier gap visible to the counters.
	sendAll(clients, 2000, 100, 0)
	if !testserver.WaitFor(20*time.Second, func() bool {
		for _, r := range rs {
			r.mu.Lock()
			done := len(r.last) == len(clients)
			for _, n := range r.last {
				done = done && n == 2099
			}
			r.mu.Unlock()
			if !done {
				return false
			}
		}
		return true
	}) {
		for i, r := range rs {
			t.Errorf("client %d: last numbers %v, want 2099 from each", i, r.last)
		}
	}
	for i, r := range rs {
		r.mu.Lock()
		if r.err != nil {
			t.Errorf("client %d: %v", i, r.err)
		}
		missing := len(clients)*2100 - r.got
		r.mu.Unlock()
		st, _ := ds[i].Gateway().ClusterStats()
		if uint64(missing) != st.Lost {
			t.Errorf("node %d: its client missed %d messages, the node counted %d lost (%+v)", i, missing, st.Lost, st)
		}
		if st.Duplicates != 0 {
			t.Errorf("node %d: %d duplicates", i, st.Duplicates)
		}
		t.Logf("node %d: missed %d of %d, %+v", i, missing, len(clients)*2100, st)
	}
}

// TestBusDown: with every NATS server gone, each node goes on delivering
// to its own clients; what it could not publish (beyond the small buffer
// configured here) is counted, and when NATS is back the other nodes
// count it as lost too.
func TestBusDown(t *testing.T) {
	nats := natstest.StartCluster(t, 1)
	var ds []*testserver.Server
	for range 2 {
		ds = append(ds, testserver.Start(t, clusterConf([]string{nats[0].URL()}, ", buffer: 4KiB")))
	}
	waitPeers(t, ds)
	a, b := dial(t, ds[0].URL("/chat")), dial(t, ds[1].URL("/chat"))
	ra, rb := receive(a), receive(b)
	// A first message, so that node 1 knows where node 0's numbers are:
	// a node counts the gaps after the first message it gets from a peer.
	a.WriteMessage(websocket.TextMessage, []byte("0:0"))
	if !testserver.WaitFor(10*time.Second, func() bool { return rb.count() == 1 && ra.count() == 1 }) {
		t.Fatal("the first message did not cross")
	}
	nats[0].Stop()
	if !testserver.WaitFor(10*time.Second, func() bool {
		st, _ := ds[0].Gateway().ClusterStats()
		return !st.Connected
	}) {
		t.Fatal("node 0 still says it is connected")
	}
	sendAll([]*websocket.Conn{a}, 1, 499, 0)
	// Local delivery goes on.
	if !testserver.WaitFor(10*time.Second, func() bool { return ra.count() == 500 }) {
		t.Fatalf("node 0's own client got %d of 500 while NATS was down", ra.count())
	}
	st, _ := ds[0].Gateway().ClusterStats()
	if st.PublishFailed == 0 {
		t.Fatalf("nothing counted as not published: %+v", st)
	}
	// NATS comes back on the same port; the next message shows node 1
	// the gap.
	nats[0].Start(t)
	waitPeers(t, ds)
	// Resubscriptions race the first messages after a reconnection: send
	// one every 100 ms until one arrives.
	next := 500
	if !testserver.WaitFor(10*time.Second, func() bool {
		a.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "0:%d", next))
		next++
		time.Sleep(100 * time.Millisecond)
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return rb.last[0] >= 500
	}) {
		t.Fatal("delivery did not resume after NATS came back")
	}
	sent := next
	a.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "0:%d", sent))
	sent++
	testserver.WaitFor(5*time.Second, func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return rb.last[0] == sent-1
	})
	st1, _ := ds[1].Gateway().ClusterStats()
	rb.mu.Lock()
	got := rb.got
	rb.mu.Unlock()
	if uint64(sent-got) != st1.Lost {
		t.Errorf("node 1 got %d of %d and counted %d lost", got, sent, st1.Lost)
	}
	st, _ = ds[0].Gateway().ClusterStats()
	t.Logf("node 0: %+v; node 1 got %d of %d, %+v", st, got, sent, st1)
}

// TestSlowConsumer: a node that cannot keep up with a route's messages
// (here a subscriber on the routes' subjects whose handler is held, as a
// node starved of CPU would be) is a NATS slow consumer. NATS drops for it
// alone and the drops are counted; the daemons' clients get every
// message, in order, without waiting for it.
func TestSlowConsumer(t *testing.T) {
	nats := natstest.StartCluster(t, 1)
	var ds []*testserver.Server
	for range 2 {
		ds = append(ds, testserver.Start(t, clusterConf([]string{nats[0].URL()}, "")))
	}
	waitPeers(t, ds)
	slow, err := natsbus.Connect(natsbus.Options{URLs: []string{nats[0].URL()}, Name: "slow", PendingMsgs: 16, PendingBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	release := make(chan struct{})
	var handled atomic.Int64
	unsub, err := slow.Subscribe("wsgate.r.>", func([]byte) {
		if handled.Load() > 0 {
			<-release
		}
		handled.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	a, b := dial(t, ds[0].URL("/chat")), dial(t, ds[1].URL("/chat"))
	rb := receive(b)
	// Until the slow subscriber has its first message, its subscription
	// may not have reached the server: probe from sender 9.
	probes := 0
	if !testserver.WaitFor(10*time.Second, func() bool {
		if handled.Load() > 0 {
			return true
		}
		a.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "9:%d", probes))
		probes++
		time.Sleep(50 * time.Millisecond)
		return false
	}) {
		t.Fatal("the slow subscriber got nothing")
	}
	const msgs = 2000
	sendAll([]*websocket.Conn{a}, 0, msgs, 0)
	// The other daemon's client is not held up by the slow node.
	last := func() int {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return rb.last[0]
	}
	if !testserver.WaitFor(20*time.Second, func() bool { return last() == msgs-1 && rb.count() >= msgs }) {
		t.Fatalf("node 1's client got %d messages (last %d) while the slow node was held", rb.count(), last())
	}
	rb.mu.Lock()
	if rb.err != nil {
		t.Error(rb.err)
	}
	rb.mu.Unlock()
	if slow.SlowConsumer() == 0 {
		t.Fatal("nothing counted as dropped for the slow consumer")
	}
	close(release)
	// Every message either reached the slow node or was counted as
	// dropped; probes sent before its subscription was made may have
	// been neither, but the one it handled was after.
	sent := int64(msgs) + 1
	if !testserver.WaitFor(10*time.Second, func() bool {
		return handled.Load()+int64(slow.SlowConsumer()) >= sent
	}) {
		t.Fatalf("handled %d + dropped %d < %d sent", handled.Load(), slow.SlowConsumer(), sent)
	}
	t.Logf("slow node: handled %d, dropped (counted) %d of %d", handled.Load(), slow.SlowConsumer(), sent)
}
