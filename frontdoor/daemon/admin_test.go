package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func adminURL(s *testserver.Server) string { return "http://" + s.AdminAddr().String() }

var metric = testserver.Sample

// TestMetrics: the admin listener's /metrics passes promtool's checks
// and counts what happened: connections, messages and bytes each way,
// refusals by cause, close codes, drops.
func TestMetrics(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, app: echo}
  - {path: /test, app: test-control, slow_consumer: drop, max_queue: 1KiB}
`)
	c, err := ws.Upgrade(s.Addr, "/echo")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"hello", "world!"} {
		c.Write(ws.Text(m))
		if f, err := c.ReadFrame(); err != nil || string(f.Payload) != m {
			t.Fatalf("echo: %v %v", f, err)
		}
	}
	c.Write(ws.Close(4001, "bye"))
	c.ReadUntilClose()
	c.Close()
	if st, _ := status(t, s.Addr, ws.Request("/echo", "Origin: http://evil.example")); st != 403 {
		t.Fatalf("cross-origin: %d", st)
	}
	// A client that reads nothing while 200 messages are flooded at it:
	// the drop policy discards what does not fit, and counts it.
	d, err := ws.Upgrade(s.Addr, "/test")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Write(ws.Text("flood 200 60000"))
	if !waitFor(10*time.Second, func() bool {
		_, body := get(t, adminURL(s)+"/metrics")
		return metric(body, `wsgate_dropped_messages_total{route="/test"}`) > 0
	}) {
		t.Fatal("drops not counted")
	}
	waitFor(10*time.Second, func() bool {
		_, body := get(t, adminURL(s)+"/metrics")
		return metric(body, `wsgate_connections_ended_total{route="/echo"}`) == 1
	})
	code, body := get(t, adminURL(s)+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for sample, want := range map[string]float64{
		`wsgate_connections_accepted_total{route="/echo"}`:                           1,
		`wsgate_connections_ended_total{route="/echo"}`:                              1,
		`wsgate_messages_total{direction="in",route="/echo"}`:                        2,
		`wsgate_messages_total{direction="out",route="/echo"}`:                       2,
		`wsgate_message_bytes_total{direction="in",route="/echo"}`:                   11,
		`wsgate_handshakes_refused_total{cause="origin",route="/echo",status="403"}`: 1,
		`wsgate_close_frames_total{code="4xxx",direction="received",route="/echo"}`:  1,
		`wsgate_close_frames_total{code="1000",direction="sent",route="/echo"}`:      1,
		`wsgate_connections_open{route="/test"}`:                                     1,
	} {
		if got := metric(body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if !regexp.MustCompile(`wsgate_build_info\{goversion="go[^"]+",revision="[^"]*",version="[^"]+"\} 1`).MatchString(body) {
		t.Errorf("no build info in:\n%s", body)
	}
	for _, family := range []string{"go_goroutines", "process_resident_memory_bytes", "wsgate_parked_connections"} {
		if !strings.Contains(body, "\n"+family+" ") {
			t.Errorf("%s missing", family)
		}
	}
	if !testserver.Promtool(t, body) {
		t.Skip("promtool is not installed")
	}
}

// TestHealth: /healthz and /readyz, with a producer marked required: not
// ready while it is down, ready once it is up; both 503 with a reason
// while the daemon drains.
func TestHealth(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	s := start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, app: echo}
  - {path: /p, backend: {socket: %s, required: true}}
`, sock))
	if code, body := get(t, adminURL(s)+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	code, body := get(t, adminURL(s)+"/readyz")
	var r map[string]string
	json.Unmarshal([]byte(body), &r)
	if code != 503 || !strings.Contains(r["reason"], "is down") {
		t.Fatalf("/readyz with the required producer down: %d %s", code, body)
	}
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ps := &producer.Server{Handler: echoProducer{}}
	go ps.Serve(ln)
	defer ps.Shutdown(context.Background())
	if !waitFor(15*time.Second, func() bool { code, _ := get(t, adminURL(s)+"/readyz"); return code == 200 }) {
		_, body := get(t, adminURL(s)+"/readyz")
		t.Fatalf("never ready once the producer was up: %s", body)
	}
}

// TestAccessLog: a line for each WebSocket when it ends, with who closed
// it and what it carried; a line for each refusal, limited per cause so
// that a flood writes a few lines and says how many it left out.
func TestAccessLog(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
routes: [{path: /echo, app: echo, subprotocols: [chat.v1]}]
`)
	c, err := ws.Upgrade(s.Addr, "/echo", "Sec-WebSocket-Protocol: chat.v1")
	if err != nil {
		t.Fatal(err)
	}
	c.Write(ws.Text("12345"))
	c.ReadFrame()
	c.Write(ws.Close(1000, "done"))
	c.ReadUntilClose()
	c.Close()
	for range 40 {
		status(t, s.Addr, ws.Request("/echo", "Origin: http://evil.example"))
	}
	status(t, s.Addr, ws.Request("/echo", "Sec-WebSocket-Version: 99"))
	if !waitFor(5*time.Second, func() bool { return s.Logs.Count("websocket closed") == 1 }) {
		t.Fatalf("no access line for the connection:\n%s", s.Logs)
	}
	line := ""
	for _, l := range strings.Split(s.Logs.String(), "\n") {
		if strings.Contains(l, "websocket closed") {
			line = l
		}
	}
	for _, want := range []string{"log=access", "route=/echo", "client=127.0.0.1", "subprotocol=chat.v1", "msgs_in=1", "bytes_in=5",
		"msgs_out=1", "bytes_out=5", "close_received=1000", "close_received_reason=done", "close_sent=1000", "closed_by=client"} {
		if !strings.Contains(line, want) {
			t.Errorf("access line lacks %q: %s", want, line)
		}
	}
	if n := s.Logs.Count("cause=origin"); n < 1 || n > 12 {
		t.Errorf("%d refusal lines for 40 refusals of one cause; want a few", n)
	}
	if s.Logs.Count("cause=bad_version") != 1 {
		t.Errorf("another cause has its own allowance:\n%s", s.Logs)
	}
	// The next line of a cause after a flood says how many were left out:
	// it comes once the allowance has refilled (a line a second).
	if !waitFor(20*time.Second, func() bool {
		status(t, s.Addr, ws.Request("/echo", "Origin: http://evil.example"))
		return s.Logs.Count("suppressed=") > 0
	}) {
		t.Errorf("no count of the lines left out:\n%s", s.Logs)
	}
}

// echoProducer accepts every client and echoes.
type echoProducer struct{}

func (echoProducer) OnOpen(*producer.Client, *producer.Accept) error { return nil }
func (echoProducer) OnMessage(c *producer.Client, t producer.MessageType, d []byte) {
	c.Send(t, d)
}
func (echoProducer) OnClose(*producer.Client, uint16, string) {}
