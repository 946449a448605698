package metrics

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/wsgate/wsgate/gateway"
)

// source is a metrics.Source with fixed figures: the input of the
// collector under test, not a stand-in for it.
type source struct{ front Front }

func (source) Snapshot() []gateway.RouteSnapshot {
	s := gateway.RouteSnapshot{Route: "/chat", App: "chat", Open: 3, Accepted: 10, Ended: 7, MessagesIn: 100, MessagesOut: 200,
		Dropped: 4, SlowConsumerCloses: 1,
		Refused:      []gateway.RefusalCount{{Status: 403, Cause: "origin", Count: 2}},
		ServerCloses: []gateway.CloseCount{{Cause: "slow_consumer", Code: "1008", Count: 1}}}
	s.CloseSent[0] = 5 // 1000
	return []gateway.RouteSnapshot{s}
}

func (source) Links() []gateway.RouteLinks {
	return []gateway.RouteLinks{{Route: "/p", LinkStats: gateway.LinkStats{Up: 1, Configured: 2, Reconnects: 3, ConnectFailures: 9, OversizeClosed: 1}}}
}

func (s source) Front() Front { return s.front }

// TestExposition: every figure of the source comes out under its name
// and labels, and the exposition passes promtool's checks.
func TestExposition(t *testing.T) {
	src := source{front: Front{Refused: map[string]uint64{"max_connections": 6}, AcceptErrors: map[string]uint64{},
		Reloads: map[string]uint64{"ok": 2}, LastReload: 1.7e9, TLSRecords: map[string]uint64{"taken": 8}}}
	reg := NewRegistryWithout(src)
	for name, want := range map[string]float64{
		`wsgate_connections_open{route="/chat"}`:                                      3,
		`wsgate_connections_accepted_total{route="/chat"}`:                            10,
		`wsgate_handshakes_refused_total{cause="origin",route="/chat",status="403"}`:  2,
		`wsgate_messages_total{direction="in",route="/chat"}`:                         100,
		`wsgate_dropped_messages_total{route="/chat"}`:                                4,
		`wsgate_close_frames_total{code="1000",direction="sent",route="/chat"}`:       5,
		`wsgate_server_closes_total{cause="slow_consumer",code="1008",route="/chat"}`: 1,
		`wsgate_producer_links{route="/p",state="down"}`:                              1,
		`wsgate_producer_connect_failures_total{route="/p"}`:                          9,
		`wsgate_producer_oversize_frames_total{outcome="client_closed",route="/p"}`:   1,
		`wsgate_connections_refused_total{cause="max_connections"}`:                   6,
		`wsgate_tls_record_layer_total{result="taken"}`:                               8,
		`wsgate_config_reloads_total{result="ok"}`:                                    2,
		`wsgate_config_last_reload_success_timestamp_seconds`:                         1.7e9,
	} {
		if got := sample(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	text := exposition(t, reg)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestNotADaemon: a source without a front door of its own (mod_wsgate's
// children) exposes no daemon-only series.
func TestNotADaemon(t *testing.T) {
	text := exposition(t, NewRegistryWithout(source{}))
	for _, name := range []string{"wsgate_parked_connections", "wsgate_config_reloads_total", "wsgate_tls_record_layer_total"} {
		if strings.Contains(text, name) {
			t.Errorf("%s exposed for a non-daemon source", name)
		}
	}
}

func exposition(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// sample is the value of one series (name and labels, as exposed), or -1.
func sample(t *testing.T, reg *prometheus.Registry, series string) float64 {
	for _, line := range strings.Split(exposition(t, reg), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
