package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/bench/load"
)

// rates makes a measurement of echo rates, one per round; a rate of 0 is
// a round that failed (left out, as the harness leaves it).
func rates(server string, rs ...float64) *measurement {
	m := &measurement{Case: "c", Group: "echo", Server: server}
	for i, r := range rs {
		if r == 0 {
			continue
		}
		m.Results = append(m.Results, load.Result{Scenario: "echo", Rate: r, Round: i + 1})
	}
	return m
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		xs          []float64
		med, lo, hi float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		s := spreadOf(tc.xs)
		if !near(s.Med, tc.med) || s.Lo != tc.lo || s.Hi != tc.hi || s.N != len(tc.xs) {
			t.Errorf("%v: %+v", tc.xs, s)
		}
	}
	if spreadOf(nil).ok() {
		t.Error("no rounds is a spread")
	}
}

// A failed round leaves a hole: the pairs after it stay matched by round.
func TestPairedRatioFailedRound(t *testing.T) {
	ws := rates("wsgate", 100, 200, 300, 400, 500)
	peer := rates("gorilla", 50, 0, 150, 200, 250) // round 2 failed
	r := pairedRatio("echo", ws, peer)
	if r.N != 4 || !near(r.Med, 2) || !near(r.Lo, 2) || !near(r.Hi, 2) {
		t.Errorf("paired by round: %+v, want 2 in each of 4 rounds", r)
	}
	// Pairing by position would have matched 200 with 150.
	if ws2 := rates("wsgate", 100, 0, 300); pairedRatio("echo", ws2, rates("gorilla", 50, 100, 150)).N != 2 {
		t.Error("a round wsgate failed is not left out")
	}
}

// The best peer is chosen round by round: here gws wins round 1 and nbio
// round 2, and wsgate's ratio is against each round's winner.
func TestBestPeerPerRound(t *testing.T) {
	ws := rates("wsgate", 100, 100, 100, 100)
	gws := rates("gws", 90, 50, 0, 60)
	nbio := rates("nbio", 40, 80, 125, 95)
	r := bestPeerRatio("echo", ws, []*measurement{gws, nbio})
	want := []float64{100.0 / 90, 100.0 / 80, 100.0 / 125, 100.0 / 95}
	s := spreadOf(want)
	if r.N != 4 || !near(r.Med, s.Med) || !near(r.Lo, s.Lo) || !near(r.Hi, s.Hi) {
		t.Errorf("got %+v, want %+v", r, s)
	}
	// The lowest of each peer's median ratio (the old summary) is nbio's,
	// (100/95 + 100/80)/2: not the same.
	if old := pairedRatio("echo", ws, nbio).Med; near(r.Med, old) {
		t.Errorf("the ratio %.3f is one peer's median ratio, not each round's best", old)
	}
}

// Memory is better when lower: the best peer is the one with the least,
// and the advantage is the peer's figure over wsgate's.
func TestBestPeerMemory(t *testing.T) {
	idle := func(server string, kib ...float64) *measurement {
		m := &measurement{Group: "idle", Server: server}
		for i, k := range kib {
			m.Results = append(m.Results, load.Result{Scenario: "idle", PerConnKiB: k, Round: i + 1})
		}
		return m
	}
	r := bestPeerRatio("idle", idle("wsgate", 1.5, 1.5), []*measurement{idle("nbio", 1.2, 1.8), idle("gws", 3, 1.6)})
	want := spreadOf([]float64{1.2 / 1.5, 1.6 / 1.5})
	if !near(r.Med, want.Med) || !near(r.Lo, want.Lo) {
		t.Errorf("got %+v, want %+v", r, want)
	}
}

// The report: spreads in every cell, a client-bound row without a ratio,
// a row where a server passed the tcp limit flagged, a partial run named
// so.
func TestReport(t *testing.T) {
	bound := func(m *measurement, cpu float64) *measurement {
		for i := range m.Results {
			m.Results[i].ClientCPU = cpu
		}
		return m
	}
	all := []*measurement{
		bound(rates("wsgate", 100, 120, 110, 90, 105), 0.5),
		bound(rates("gorilla", 50, 60, 0, 45, 55), 0.5),
		bound(rates("tcp", 200, 210, 190, 205, 195), 0.5),
	}
	other := []*measurement{
		bound(rates("wsgate", 300, 310, 305), 0.97),
		bound(rates("gorilla", 290, 280, 295), 0.97),
		bound(rates("tcp", 280, 290, 285), 0.97),
	}
	for _, m := range other {
		m.Case = "d"
	}
	dir := t.TempDir()
	if err := writeReport(dir, "- Method: partial run: only the groups echo", append(all, other...)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"**105 [90–120]**",              // wsgate's median and range
		"52 [45–60] (2.00 (1.91–2.00))", // gorilla's, and wsgate ÷ gorilla paired over its 4 rounds
		"| 2.00 (1.91–2.00) |",          // ÷ the best peer of each round
		"client-bound (the load generator used 97% of its core): no ratio",
		"the tcp echo (285) is below wsgate 305",
		"partial run",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report has no %q:\n%s", want, md)
		}
	}
}
