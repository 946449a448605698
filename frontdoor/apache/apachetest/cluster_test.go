package apachetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	sdk "github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/natstest"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// Every MPM here runs several children with the test's four clients: one
// connection per process under prefork, two threads per child under
// event.
var multiChild = map[string]string{
	"prefork": "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\n",
	"event":   "StartServers 2\nServerLimit 8\nThreadLimit 2\nThreadsPerChild 2\nMinSpareThreads 2\nMaxSpareThreads 8\nMaxRequestWorkers 16\n",
}

// broadcastProducer sends every message to the whole route.
type broadcastProducer struct{}

func (broadcastProducer) OnOpen(*sdk.Client, *sdk.Accept) error { return nil }
func (broadcastProducer) OnMessage(c *sdk.Client, typ sdk.MessageType, data []byte) {
	c.Broadcast(typ, data, false)
}
func (broadcastProducer) OnClose(*sdk.Client, uint16, string) {}

// TestClusterAcrossChildren: with WsgateCluster, the chat application and
// a producer's BROADCAST reach the clients of every httpd child, under
// prefork and under event with several children.
func TestClusterAcrossChildren(t *testing.T) {
	need(t)
	nats := natstest.StartCluster(t, 1)
	// httpd's children (www-data) connect to it.
	dir, err := os.MkdirTemp("", "bcast")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "bcast.sock")
	ln, err := sdk.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &sdk.Server{Handler: broadcastProducer{}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, mpm := range []string{"prefork", "event"} {
		t.Run(mpm, func(t *testing.T) {
			// Each WebSocket keeps one of a child's two threads, so four
			// clients need two children. With idle workers released, one
			// child can take every client (under load the first child's
			// listener often does), and then nothing crosses the bus.
			keep := ""
			if mpm == "event" {
				keep = "WsgateReleaseWorkers Off\n"
			}
			h := start(t, options{MPM: mpm, Global: multiChild[mpm] + keep + "WsgateCluster " + nats[0].URL() + "\n", Body: `
<Location /chat>
  SetHandler websocket-handler
  WebSocketApp chat
</Location>
<Location /bcast>
  SetHandler websocket-handler
  WebSocketBackend ` + sock + `
</Location>
<Location /metrics>
  SetHandler wsgate-metrics
</Location>
`})
			sent := 0
			for _, path := range []string{"/chat", "/bcast"} {
				t.Run(path, func(t *testing.T) { sent += fourClients(t, "ws://"+h.Addr()+path) })
			}
			if !strings.Contains(h.Log(), "cluster: rooms and broadcasts go through NATS") {
				t.Errorf("no child says it joined the cluster:\n%s", h.Log())
			}
			// The children's bus counters, summed: several connected, and
			// every message the clients sent published by the child that
			// got it. Each child publishes its counters every second: wait
			// for all of them to be summed.
			published := fmt.Sprintf(`wsgate_cluster_messages_total{direction="published"} %d`, sent)
			var body []byte
			testserver.WaitFor(10*time.Second, func() bool {
				resp, err := http.Get("http://" + h.Addr() + "/metrics")
				if err != nil {
					return false
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return strings.Contains(string(body), published)
			})
			m := string(body)
			if !strings.Contains(m, published) || strings.Contains(m, "wsgate_cluster_connected 1\n") || strings.Contains(m, "wsgate_cluster_connected 0\n") {
				t.Errorf("cluster metrics:\n%s", testserver.Grep(m, "wsgate_cluster"))
			}
		})
	}
}

// fourClients connects four clients, lets each send one message, and
// checks that every client gets all four.
//
// A child's link to NATS and its subscription come up once it has served
// a client, and not at once: first every client sends probes until a probe
// from each has reached all four (the children hear each other), then the
// messages that count.
//
// It returns how many messages the clients sent, probes included.
func fourClients(t *testing.T, url string) (sent int) {
	const n = 4
	var cs []*websocket.Conn
	for range n {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	var mu sync.Mutex
	probes := make([]map[string]bool, n) // per client: the senders heard from
	got := make([]map[string]bool, n)    // per client: the messages that count
	var wg sync.WaitGroup
	for i, c := range cs {
		probes[i], got[i] = map[string]bool{}, map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, p, err := c.ReadMessage()
				if err != nil {
					return
				}
				mu.Lock()
				if from, ok := strings.CutPrefix(string(p), "probe "); ok {
					probes[i][from] = true
				} else {
					got[i][string(p)] = true
				}
				done := len(got[i]) == n
				mu.Unlock()
				if done {
					return
				}
			}
		}()
	}
	heard := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range cs {
			if len(probes[i]) < n {
				return false
			}
		}
		return true
	}
	if !testserver.WaitFor(30*time.Second, func() bool {
		for i, c := range cs {
			if c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "probe %d", i)) == nil {
				sent++
			}
		}
		time.Sleep(50 * time.Millisecond) // between rounds of probes, not a wait for a condition
		return heard()
	}) {
		t.Fatalf("the clients' children never heard each other: %v", probes)
	}
	for i, c := range cs {
		if c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "from %d", i)) == nil {
			sent++
		}
	}
	wg.Wait()
	for i := range cs {
		if len(got[i]) != n {
			t.Errorf("client %d got %v, want a message from each of %d clients", i, got[i], n)
		}
	}
	return sent
}

// TestBroadcastWithoutClusterWarns: a route that broadcasts, under an MPM
// that runs several children, without WsgateCluster: httpd says so when
// it reads its configuration. With WsgateCluster, or with a route that
// does not broadcast, it does not.
func TestBroadcastWithoutClusterWarns(t *testing.T) {
	need(t)
	for _, tc := range []struct {
		global, app string
		warn        bool
	}{
		{"", "chat", true},
		{"WsgateCluster nats://127.0.0.1:4222\n", "chat", false},
		{"", "echo", false},
	} {
		h := configure(t, options{MPM: "prefork", Global: tc.global, Body: "<Location /x>\n  SetHandler websocket-handler\n  WebSocketApp " + tc.app + "\n</Location>\n"})
		out, err := h.check()
		if err != nil {
			t.Fatalf("httpd -t: %v\n%s", err, out)
		}
		warned := strings.Contains(out, "uses rooms or broadcast, but httpd may run")
		if warned != tc.warn {
			t.Errorf("%q %s: warned %v, want %v:\n%s", tc.global, tc.app, warned, tc.warn, out)
		}
	}
}

// TestBroadcastWarningInErrorLog: the same warning reaches httpd's
// ErrorLog when httpd starts (apache2 -k start prints the first pass's
// to the terminal only), and once more on each graceful restart: once per
// configuration read that serves.
func TestBroadcastWarningInErrorLog(t *testing.T) {
	need(t)
	h := start(t, options{MPM: "prefork", Body: "<Location /x>\n  SetHandler websocket-handler\n  WebSocketApp chat\n</Location>\n"})
	const warning = "uses rooms or broadcast, but httpd may run"
	count := func() int { return strings.Count(h.Log(), warning) }
	if !testserver.WaitFor(10*time.Second, func() bool { return strings.Contains(h.Log(), "resuming normal operations") }) {
		t.Fatalf("httpd never said it runs:\n%s", h.Log())
	}
	if n := count(); n != 1 {
		t.Fatalf("after -k start the ErrorLog has the warning %d times, want once:\n%s", n, h.Log())
	}
	h.Signal("graceful")
	if !testserver.WaitFor(10*time.Second, func() bool { return count() >= 2 }) {
		t.Fatalf("after a graceful restart the ErrorLog has the warning %d times, want twice:\n%s", count(), h.Log())
	}
	if !testserver.WaitFor(10*time.Second, func() bool { return strings.Count(h.Log(), "resuming normal operations") >= 2 }) {
		t.Fatalf("httpd never resumed after the graceful restart:\n%s", h.Log())
	}
	if n := count(); n != 2 {
		t.Errorf("the warning %d times after a start and a restart, want 2:\n%s", n, h.Log())
	}
}

// TestClusterDirectiveErrors: bad WsgateCluster settings fail httpd -t.
func TestClusterDirectiveErrors(t *testing.T) {
	need(t)
	for global, want := range map[string]string{
		"WsgateCluster http://127.0.0.1:4222\n":                                      "is not a NATS URL",
		"WsgateCluster nats://127.0.0.1:4222\nWsgateClusterOption colour blue\n":     "unknown key 'colour'",
		"WsgateCluster nats://127.0.0.1:4222\nWsgateClusterOption credentials /no\n": "/no",
	} {
		h := configure(t, options{Global: global, Body: "<Location /x>\n  SetHandler websocket-handler\n  WebSocketApp chat\n</Location>\n"})
		out, err := h.check()
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%q: %v\n%s\nwant %q", global, err, out, want)
		}
	}
}
