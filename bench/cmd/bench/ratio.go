package main

import (
	"fmt"
	"slices"

	"github.com/wsgate/wsgate/bench/load"
)

// spread is a figure over rounds: the median, the lowest and the highest,
// and how many rounds it is of. Every figure the report publishes is
// one, so that a reader sees how far one round can move it.
type spread struct {
	Med, Lo, Hi float64
	N           int
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{Med: med, Lo: s[0], Hi: s[n-1], N: n}
}

// ok reports whether the spread has any round.
func (s spread) ok() bool { return s.N > 0 }

// rounds indexes a measurement's results by their round. Results of a
// file written before rounds were recorded are numbered in order.
func rounds(m *measurement) map[int]load.Result {
	out := make(map[int]load.Result, len(m.Results))
	numbered := false
	for _, r := range m.Results {
		if r.Round != 0 {
			numbered = true
			break
		}
	}
	for i, r := range m.Results {
		k := r.Round
		if !numbered {
			k = i + 1
		}
		out[k] = r
	}
	return out
}

// valueSpread is a server's figure (value) over its rounds.
func valueSpread(m *measurement) spread {
	if m == nil {
		return spread{}
	}
	var xs []float64
	for _, r := range m.Results {
		xs = append(xs, value(r))
	}
	return spreadOf(xs)
}

// pairedRatio is ref's advantage over other (see advantage), taken in each
// round both completed and matched by the round's number: a round one of
// them failed is left out, and never shifts the pairs after it.
func pairedRatio(group string, ref, other *measurement) spread {
	if ref == nil || other == nil {
		return spread{}
	}
	rr, or := rounds(ref), rounds(other)
	var xs []float64
	for _, k := range sortedKeys(rr) {
		o, ok := or[k]
		if !ok {
			continue
		}
		if a := advantage(group, value(rr[k]), value(o)); a > 0 {
			xs = append(xs, a)
		}
	}
	return spreadOf(xs)
}

// bestPeerRatio is ref's advantage over the best of peers in each round
// (the highest rate, or the least memory, among the peers that completed
// that round), then its spread over the rounds: wsgate against whichever
// peer did best that round, not against each peer's median.
func bestPeerRatio(group string, ref *measurement, peers []*measurement) spread {
	if ref == nil || len(peers) == 0 {
		return spread{}
	}
	rr := rounds(ref)
	pr := make([]map[int]load.Result, len(peers))
	for i, p := range peers {
		pr[i] = rounds(p)
	}
	var xs []float64
	for _, k := range sortedKeys(rr) {
		worst := 0.0
		for _, p := range pr {
			r, ok := p[k]
			if !ok {
				continue
			}
			// The best peer is the one ref's advantage is least over.
			if a := advantage(group, value(rr[k]), value(r)); a > 0 && (worst == 0 || a < worst) {
				worst = a
			}
		}
		if worst > 0 {
			xs = append(xs, worst)
		}
	}
	return spreadOf(xs)
}

func sortedKeys(m map[int]load.Result) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// clientBound is the share of its core the load generator used, as the
// median over m's rounds, when it is at least clientBoundAt: the row
// measures the client, not the server, and no ratio is published.
const clientBoundAt = 0.9

func clientCPU(m *measurement) float64 {
	var xs []float64
	for _, r := range m.Results {
		if r.ClientCPU > 0 {
			xs = append(xs, r.ClientCPU)
		}
	}
	return spreadOf(xs).Med
}

// ratioText prints a ratio spread: "1.12 (0.98–1.25)", or "1.12" for one
// round.
func ratioText(s spread) string {
	if s.N <= 1 {
		return fmt.Sprintf("%.2f", s.Med)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Med, s.Lo, s.Hi)
}

// valueText prints a figure's spread in the group's unit.
func valueText(group string, s spread) string {
	if s.N <= 1 {
		return format(group, s.Med)
	}
	return fmt.Sprintf("%s [%s–%s]", format(group, s.Med), format(group, s.Lo), format(group, s.Hi))
}
