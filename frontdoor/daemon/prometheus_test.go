package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestPrometheusSeesFirstEvents: a real Prometheus scrapes the daemon
// from its start. Every series a route or the front door can have is
// there at 0 before its first event, so increase() counts that first
// event (a series that appeared with it read 0); the last successful
// load's timestamp is there from the start too.
func TestPrometheusSeesFirstEvents(t *testing.T) {
	s := start(t, "listen: [{address: 127.0.0.1:0}]\nroutes: [{path: /echo, app: echo}]\n")
	prom := testserver.StartPrometheus(t, s.AdminAddr().String())
	// Prometheus has scraped the daemon before anything happened.
	if !waitFor(30*time.Second, func() bool {
		v, ok := prom.Query(t, `wsgate_close_frames_total{code="1000",direction="sent",route="/echo"}`)
		return ok && v == 0
	}) {
		t.Fatal("the close-code series is not there at 0 before the first close")
	}
	if v, ok := prom.Query(t, `wsgate_config_last_reload_success_timestamp_seconds`); !ok || time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last reload success timestamp: %v %v, want the start time", v, ok)
	}
	for _, q := range []string{
		`wsgate_handshakes_refused_total{cause="origin",route="/echo",status="403"}`,
		`wsgate_server_closes_total{cause="slow_consumer",code="1008",route="/echo"}`,
		`wsgate_connections_refused_total{cause="max_pending_handshakes"}`,
	} {
		if v, ok := prom.Query(t, q); !ok || v != 0 {
			t.Errorf("%s: %v %v, want 0 from the start", q, v, ok)
		}
	}
	// The first close and the first refusal.
	c, _, err := websocket.DefaultDialer.Dial(s.URL("/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	c.ReadMessage()
	c.Close()
	h := map[string][]string{"Origin": {"http://elsewhere.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(s.URL("/echo"), h); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v", err)
	}
	for _, q := range []string{
		`increase(wsgate_close_frames_total{code="1000",direction="sent",route="/echo"}[1m])`,
		`increase(wsgate_handshakes_refused_total{cause="origin",route="/echo",status="403"}[1m])`,
	} {
		if !waitFor(30*time.Second, func() bool { v, ok := prom.Query(t, q); return ok && v >= 0.9 }) {
			v, ok := prom.Query(t, q)
			t.Errorf("%s = %v %v, want the first event counted", q, v, ok)
		}
	}
}

// TestReloadSaysWhatChanged: the reload's log line names the routes
// added, removed, replaced and kept, the listeners opened and closed, and
// the server settings that changed.
func TestReloadSaysWhatChanged(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 100}
routes:
  - {path: /same, app: echo}
  - {path: /changed, app: echo}
  - {path: /gone, app: echo}
`)
	cfg, err := config.Parse("reload.yaml", []byte(`
listen: [{address: 127.0.0.1:0}, {address: 127.0.0.1:0}]
server: {max_connections_per_ip: 200}
routes:
  - {path: /same, app: echo}
  - {path: /changed, app: echo, max_message_size: 2MiB}
  - {path: /new, app: chat}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Address = "127.0.0.1:0"
	if err := s.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	line := testserver.Grep(s.Logs.String(), "configuration reloaded")
	for _, want := range []string{"routes_added=/new", "routes_removed=/gone", "routes_replaced=/changed", "routes_kept=/same",
		"listeners_opened=127.0.0.1:", "listeners_closed=-", "server_changed=max_connections_per_ip"} {
		if !strings.Contains(line, want) {
			t.Errorf("the reload line lacks %s: %s", want, line)
		}
	}
}

// TestProducerWriteLatency: how long clients' messages take to reach the
// producer's socket is a histogram per route.
func TestProducerWriteLatency(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ps := &producer.Server{Handler: echoProducer{}}
	go ps.Serve(ln)
	defer ps.Shutdown(context.Background())
	s := start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes: [{path: /p, backend: {socket: %s}}]\n", sock))
	c, _, err := websocket.DefaultDialer.Dial(s.URL("/p"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("m", i)))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if n := testserver.Sample(s.Metrics(t), `wsgate_producer_write_seconds_count{route="/p"}`); n < 1 {
		t.Errorf("producer write latency: %v observations\n%s", n, testserver.Grep(s.Metrics(t), "producer_write"))
	}
}

// TestLatencyAndLimitMetrics: a handshake, a refusal and a connection's
// end are observed in the histograms by route and outcome; every limit is
// a wsgate_limit gauge with the configured value; a serving daemon says
// it is ready and not draining. promtool accepts the exposition.
func TestLatencyAndLimitMetrics(t *testing.T) {
	s := start(t, "listen: [{address: 127.0.0.1:0}]\nserver: {max_connections: 777, max_connections_per_ip: 55}\nroutes: [{path: /echo, app: echo}]\n")
	c, _, err := websocket.DefaultDialer.Dial(s.URL("/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(websocket.TextMessage, []byte("x"))
	c.ReadMessage()
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	c.ReadMessage()
	c.Close()
	h := map[string][]string{"Origin": {"http://elsewhere.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(s.URL("/echo"), h); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v", err)
	}
	var m string
	if !waitFor(10*time.Second, func() bool {
		m = s.Metrics(t)
		return testserver.Sample(m, `wsgate_connection_lifetime_seconds_count{route="/echo"}`) == 1
	}) {
		t.Fatalf("the connection's lifetime was not observed:\n%s", testserver.Grep(m, "lifetime"))
	}
	for series, want := range map[string]float64{
		`wsgate_handshake_duration_seconds_count{outcome="accepted",route="/echo"}`: 1,
		`wsgate_handshake_duration_seconds_count{outcome="refused",route="/echo"}`:  1,
		`wsgate_limit{name="max_connections"}`:                                      777,
		`wsgate_limit{name="max_connections_per_ip"}`:                               55,
		`wsgate_send_queue_bytes{route="/echo"}`:                                    0,
		`wsgate_ready`:                                                              1,
		`wsgate_draining`:                                                           0,
	} {
		if got := testserver.Sample(m, series); got != want {
			t.Errorf("%s = %v, want %v\n%s", series, got, want, testserver.Grep(m, "wsgate_limit"))
		}
	}
	testserver.Promtool(t, m)
}
