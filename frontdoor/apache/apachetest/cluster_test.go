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

	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/testserver"
	sdk "github.com/wsgate/wsgate/sdk/producer"
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
			h := start(t, options{MPM: mpm, Global: multiChild[mpm] + "WsgateCluster " + nats[0].URL() + "\n", Body: `
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
			for _, path := range []string{"/chat", "/bcast"} {
				t.Run(path, func(t *testing.T) { fourClients(t, "ws://"+h.Addr()+path) })
			}
			if !strings.Contains(h.Log(), "cluster: rooms and broadcasts go through NATS") {
				t.Errorf("no child says it joined the cluster:\n%s", h.Log())
			}
			// The children's bus counters, summed: several connected, and
			// the eight messages published by the children that got them.
			// Each child publishes its counters every second: wait for all
			// eight publications to be summed.
			var body []byte
			testserver.WaitFor(10*time.Second, func() bool {
				resp, err := http.Get("http://" + h.Addr() + "/metrics")
				if err != nil {
					return false
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return strings.Contains(string(body), `wsgate_cluster_messages_total{direction="published"} 8`)
			})
			m := string(body)
			if !strings.Contains(m, `wsgate_cluster_messages_total{direction="published"} 8`) || strings.Contains(m, "wsgate_cluster_connected 1\n") || strings.Contains(m, "wsgate_cluster_connected 0\n") {
				t.Errorf("cluster metrics:\n%s", testserver.Grep(m, "wsgate_cluster"))
			}
		})
	}
}

// fourClients connects four clients, lets each send one message, and
// checks that every client gets all four.
func fourClients(t *testing.T, url string) {
	var cs []*websocket.Conn
	for range 4 {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	// A child's link to NATS and its subscription are up once it has
	// served a client; give the heartbeats a moment to meet.
	time.Sleep(1500 * time.Millisecond)
	var wg sync.WaitGroup
	got := make([]map[string]bool, len(cs))
	for i, c := range cs {
		got[i] = map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(got[i]) < len(cs) {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, p, err := c.ReadMessage()
				if err != nil {
					return
				}
				got[i][string(p)] = true
			}
		}()
	}
	for i, c := range cs {
		c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "from %d", i))
	}
	wg.Wait()
	for i := range cs {
		if len(got[i]) != len(cs) {
			t.Errorf("client %d got %v, want a message from each of %d clients", i, got[i], len(cs))
		}
	}
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
