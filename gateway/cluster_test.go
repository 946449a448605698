package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/testkit/testserver"
	wsengine "github.com/wsgate/wsgate/websocket"
)

// roomApp joins each client to the room named in its query (?room=x) and
// sends every text message it gets to that room, sender included.
type roomApp struct{ gateway.Base }

func (roomApp) OnOpen(ctx context.Context, c *gateway.Conn) error {
	if r := c.Request().RawQuery; strings.HasPrefix(r, "room=") {
		c.Join(strings.TrimPrefix(r, "room="))
	}
	return nil
}

func (roomApp) OnMessage(c *gateway.Conn, m gateway.Message) {
	for _, r := range c.Rooms() {
		c.Hub().SendRoom(r, wsengine.TextMessage, m.Data, nil)
	}
}

func init() {
	gateway.RegisterApp(gateway.AppInfo{Name: "cluster-test-room", Doc: "test", New: func() gateway.Handler { return roomApp{} }})
}

const clusterConf = `
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /chat, app: chat}
  - {path: /room, app: cluster-test-room}
`

// nodes starts n daemons sharing bus (each through its own member).
func nodes(t *testing.T, n int, member func() gateway.Bus) []*testserver.Server {
	var out []*testserver.Server
	for range n {
		s := testserver.Start(t, clusterConf)
		if err := s.Gateway().UseBus(member(), "test"); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange has every client send msgs messages and checks that every
// client receives every message of its group once, each sender's in
// order.
func exchange(t *testing.T, clients []*websocket.Conn, msgs int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make([]int, len(clients))
			for range msgs * len(clients) {
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				_, p, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("client %d: %v (got %v)", i, err, next)
					return
				}
				var from, n int
				fmt.Sscanf(string(p), "%d:%d", &from, &n)
				if from < 0 || from >= len(next) || n != next[from] {
					errs <- fmt.Errorf("client %d: %q, want %d:%d", i, p, from, next[from])
					return
				}
				next[from]++
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, p, err := c.ReadMessage(); err == nil {
				errs <- fmt.Errorf("client %d: one message too many: %q", i, p)
			}
		}()
	}
	for i, c := range clients {
		go func() {
			for n := range msgs {
				c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d:%d", i, n))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClusterChat: the chat application across three nodes, two clients
// each: every message reaches every client once, in each sender's order.
func TestClusterChat(t *testing.T) {
	bus := gateway.NewLocalBus()
	ns := nodes(t, 3, bus.Member)
	var clients []*websocket.Conn
	for _, n := range ns {
		clients = append(clients, dial(t, n.URL("/chat")), dial(t, n.URL("/chat")))
	}
	exchange(t, clients, 200)
	st, ok := ns[0].Gateway().ClusterStats()
	if !ok || st.Published != 2*200 || st.Received != 4*200 || st.Lost != 0 || st.Duplicates != 0 {
		t.Errorf("node 0's counters: %+v", st)
	}
}

// TestClusterRooms: room messages reach the room's members on every node
// and nobody else; counts add up across nodes.
func TestClusterRooms(t *testing.T) {
	bus := gateway.NewLocalBus()
	ns := nodes(t, 3, bus.Member)
	var red, blue []*websocket.Conn
	for _, n := range ns {
		red = append(red, dial(t, n.URL("/room?room=red")))
		blue = append(blue, dial(t, n.URL("/room?room=blue")))
	}
	// Heartbeats tell each node which others serve the route.
	hub := ns[0].Gateway().Route("/room").Hub()
	if !testserver.WaitFor(5*time.Second, func() bool {
		n, nodes := hub.ClusterLen(context.Background(), "red")
		return n == 3 && nodes == 3
	}) {
		n, nodes := hub.ClusterLen(context.Background(), "red")
		t.Fatalf("red counts %d on %d nodes, want 3 on 3", n, nodes)
	}
	if n, _ := hub.ClusterLen(context.Background(), ""); n != 6 {
		t.Errorf("the route counts %d, want 6", n)
	}
	var wg sync.WaitGroup
	for _, g := range [][]*websocket.Conn{red, blue} {
		wg.Add(1)
		go func() { defer wg.Done(); exchange(t, g, 100) }()
	}
	wg.Wait()
}

// dupBus delivers every message twice and drops every tenth, as a broker
// might around a reconnection: receivers deliver once and count both.
type dupBus struct {
	gateway.Bus
	mu sync.Mutex
	n  int
}

func (b *dupBus) Publish(topic string, msg []byte) error {
	if !strings.Contains(topic, ".r.") {
		return b.Bus.Publish(topic, msg)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.n%10 == 0 {
		return nil // lost on the way
	}
	b.Bus.Publish(topic, msg)
	return b.Bus.Publish(topic, msg)
}

func TestClusterDuplicatesAndLoss(t *testing.T) {
	bus := gateway.NewLocalBus()
	ns := nodes(t, 2, func() gateway.Bus { return &dupBus{Bus: bus.Member()} })
	sender, receiver := dial(t, ns[0].URL("/chat")), dial(t, ns[1].URL("/chat"))
	for i := range 100 {
		sender.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d", i))
	}
	got := 0
	for {
		receiver.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := receiver.ReadMessage(); err != nil {
			break
		}
		got++
	}
	st, _ := ns[1].Gateway().ClusterStats()
	// Numbers 10, 20, ... 100 were dropped; 100 itself is the last, and a
	// loss is only seen when a later number arrives.
	if got != 90 || st.Received != 90 || st.Duplicates != 90 || st.Lost != 9 {
		t.Errorf("received %d; counters %+v; want 90 delivered once, 90 duplicates, 9 lost", got, st)
	}
}

// TestNoBusStaysLocal: without a bus, nothing leaves the node.
func TestNoBusStaysLocal(t *testing.T) {
	a, b := testserver.Start(t, clusterConf), testserver.Start(t, clusterConf)
	ca, cb := dial(t, a.URL("/chat")), dial(t, b.URL("/chat"))
	ca.WriteMessage(websocket.TextMessage, []byte("hello"))
	if _, p, err := ca.ReadMessage(); err != nil || string(p) != "hello" {
		t.Fatalf("own echo: %q %v", p, err)
	}
	cb.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, p, err := cb.ReadMessage(); err == nil {
		t.Fatalf("another node's client got %q without a bus", p)
	}
	if _, ok := a.Gateway().ClusterStats(); ok {
		t.Fatal("ClusterStats without a bus")
	}
}
