package apachetest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

var sample = testserver.Sample

// TestMetricsAcrossChildren: SetHandler wsgate-metrics reports the sum
// over every httpd child, whichever child answers the scrape; mod_status
// (ExtendedStatus) gets a mod_wsgate section with the same sums. Under
// prefork each held WebSocket holds its own child.
func TestMetricsAcrossChildren(t *testing.T) {
	for _, mpm := range []string{"prefork", "event"} {
		t.Run(mpm, func(t *testing.T) {
			h := start(t, options{MPM: mpm, Modules: []string{"status"}, Global: "ExtendedStatus On", Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
<Location /metrics>
  SetHandler wsgate-metrics
</Location>
<Location /server-status>
  SetHandler server-status
</Location>
`})
			const held = 4
			for i := range held {
				c, err := ws.Upgrade(h.Addr(), "/echo")
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				defer c.Close()
				c.Write(ws.Text("hello"))
				if f, err := c.ReadFrame(); err != nil || string(f.Payload) != "hello" {
					t.Fatalf("echo %d: %v %v", i, f, err)
				}
			}
			scrape := func(path string) string {
				resp, err := http.Get("http://" + h.Addr() + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
				}
				return string(b)
			}
			want := map[string]float64{
				`wsgate_connections_open{route="/echo"}`:               held,
				`wsgate_connections_accepted_total{route="/echo"}`:     held,
				`wsgate_messages_total{direction="in",route="/echo"}`:  held,
				`wsgate_messages_total{direction="out",route="/echo"}`: held,
			}
			mismatch := func(body string) string {
				for name, v := range want {
					if got := sample(body, name); got != v {
						return fmt.Sprintf("%s = %v, want %v", name, got, v)
					}
				}
				return ""
			}
			// Children publish every second, and a child's snapshot may
			// fall between its accept and its first message: wait until
			// every counter has arrived; after that every scrape, whatever
			// child answers, must see all four.
			deadline := time.Now().Add(15 * time.Second)
			var body string
			for {
				body = scrape("/metrics")
				if mismatch(body) == "" || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			for range 8 {
				body = scrape("/metrics")
				if m := mismatch(body); m != "" {
					t.Fatalf("%s\n%s", m, body)
				}
			}
			if mpm == "prefork" && sample(body, "wsgate_httpd_children") < held {
				t.Errorf("%v children publishing under prefork with %d held WebSockets", sample(body, "wsgate_httpd_children"), held)
			}
			testserver.Promtool(t, body)
			if page := scrape("/server-status"); !strings.Contains(page, "<h2>mod_wsgate</h2>") || !strings.Contains(page, "4 WebSockets open") {
				t.Errorf("mod_status has no mod_wsgate section:\n%s", page)
			}
			if auto := scrape("/server-status?auto"); !strings.Contains(auto, "WsgateOpen: 4") {
				t.Errorf("mod_status ?auto:\n%s", auto)
			}
		})
	}
}
