package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/bench/load"
)

// holdCases are the hold group's figures, read from the Go benchmarks in
// apps/backend (the hold is a state of the gateway, not a load: there is
// nothing for the load generator to drive).
var holdCases = []struct{ label, bench, unit string }{
	{"memory a held client adds (B)", "BenchmarkHeldClientCost", "B/held-client"},
	{"memory per waiting 16 B message (B)", "BenchmarkHeldClientCost", "B/queued-message"},
	{"resume 1,000 held clients, producer listening to last message echoed (ms)", "BenchmarkHoldResume1000", "ns/op"},
	{"of which waiting for the pool's next connection attempt (ms)", "BenchmarkHoldResume1000", "µs-to-link"},
}

// measureHold runs the hold benchmarks once per round and returns one
// measurement per figure.
func (h *harness) measureHold(rounds int) ([]*measurement, error) {
	ms := make([]*measurement, len(holdCases))
	for i, c := range holdCases {
		ms[i] = &measurement{Case: c.label, Group: "hold", Server: "wsgate"}
	}
	for range rounds {
		cmd := exec.Command("go", "test", "./apps/backend", "-run", "^$", "-bench", "HeldClientCost|HoldResume1000", "-benchtime", "5x", "-count", "1")
		cmd.Dir = h.root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return ms, fmt.Errorf("hold benchmarks: %v\n%s", err, out)
		}
		for i, c := range holdCases {
			v, ok := benchMetric(string(out), c.bench, c.unit)
			if !ok {
				return ms, fmt.Errorf("hold benchmarks: no %s in %s:\n%s", c.unit, c.bench, out)
			}
			switch c.unit {
			case "ns/op":
				v /= 1e6
			case "µs-to-link":
				v /= 1e3
			}
			ms[i].Results = append(ms[i].Results, load.Result{Scenario: "hold", Rate: v})
		}
	}
	return ms, nil
}

// benchMetric finds unit's value on bench's line of go test -bench output.
func benchMetric(out, bench, unit string) (float64, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], bench+"-") && f[0] != bench {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] == unit {
				v, err := strconv.ParseFloat(f[i], 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}
