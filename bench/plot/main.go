// Command plot draws docs/benchmarks.png from the harness's
// benchmarks.json: for every throughput case, each server's rate as a
// share of the fastest in that case.
//
//	cd bench/plot && go run . ../../docs
//
// It is a module of its own so that the harness, which the tests run,
// never needs the plotting libraries.
package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image/color"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// measurement is what the harness writes for one case and server
// (bench/cmd/bench), as much of it as the plot reads.
type measurement struct {
	Case    string `json:"case"`
	Group   string `json:"group"`
	Server  string `json:"server"`
	Results []struct {
		Scenario   string  `json:"scenario"`
		Rate       float64 `json:"rate"`
		PerConnKiB float64 `json:"per_conn_kib"`
	} `json:"results"`
}

// median is the median rate over the rounds.
func (m *measurement) median() (float64, bool) {
	if len(m.Results) == 0 {
		return 0, false
	}
	xs := make([]float64, 0, len(m.Results))
	for _, r := range m.Results {
		xs = append(xs, r.Rate)
	}
	slices.Sort(xs)
	return xs[len(xs)/2], true
}

func main() {
	dir := "../../docs"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	b, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	var rs struct {
		Measurements []*measurement `json:"measurements"`
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	out := filepath.Join(dir, "benchmarks.png")
	if err := plotThroughput(out, rs.Measurements); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", out)
}

// plotThroughput draws, for every throughput case, each server's rate as
// a share of the fastest server in that case: scenarios have different
// units, so the plot compares servers within a case and the tables carry
// the absolute figures. The Apache cases, which have other servers, get a
// panel of their own.
func plotThroughput(file string, all []*measurement) error {
	var panels []*plot.Plot
	var heights []float64
	for _, apache := range []bool{false, true} {
		var ms []*measurement
		for _, m := range all {
			// The ops and cluster groups compare wsgate with itself: their
			// tables say all there is, and their servers would widen every
			// case.
			if m.Group != "idle" && m.Group != "ops" && m.Group != "cluster" && m.Group != "direct" && (m.Group == "apache") == apache {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			continue
		}
		title := "wsgate and the peer libraries"
		if apache {
			title = "Apache httpd: mod_wsgate and httpd's proxy in front of the daemon"
		}
		p, rows, err := barPanel(title, ms)
		if err != nil {
			return err
		}
		panels = append(panels, p)
		heights = append(heights, float64(rows)*6.5+70)
	}
	if len(panels) == 0 {
		return nil
	}
	total := 0.0
	for _, h := range heights {
		total += h
	}
	img := vgimg.New(vg.Points(900), vg.Points(total))
	dc := draw.New(img)
	top := 0.0
	for i, p := range panels {
		// Crop from the top by what the panels above took, from the bottom
		// by what the panels below take.
		below := total - top - heights[i]
		p.Draw(draw.Crop(dc, 0, 0, vg.Points(below), -vg.Points(top)))
		top += heights[i]
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return err
}

// barPanel is one horizontal grouped bar chart; it returns the number of
// bar rows it holds, for sizing.
func barPanel(title string, ms []*measurement) (*plot.Plot, int, error) {
	var cases, servers []string
	type key struct{ c, s string }
	vals := map[key]float64{}
	for _, m := range ms {
		v, ok := m.median()
		if !ok || v == 0 {
			// No rate: a memory case (the proxy group's idle pairs), which
			// its table shows.
			continue
		}
		label := m.Group + ": " + m.Case
		if !slices.Contains(cases, label) {
			cases = append(cases, label)
		}
		if !slices.Contains(servers, m.Server) {
			servers = append(servers, m.Server)
		}
		vals[key{label, m.Server}] = v
	}
	p := plot.New()
	p.Title.Text = title + ": rate as a share of the fastest in each case (same run)"
	p.X.Label.Text = "share of the fastest server's rate"
	// Room on the right for the legend.
	p.X.Min, p.X.Max = 0, 1.3
	p.Legend.Top = true
	// Cases top to bottom in table order: the Y axis grows upwards.
	rev := slices.Clone(cases)
	slices.Reverse(rev)
	n := len(servers)
	w := vg.Points(6)
	for i, s := range servers {
		vs := make(plotter.Values, len(rev))
		for j, c := range rev {
			best := 0.0
			for _, o := range servers {
				best = max(best, vals[key{c, o}])
			}
			if best > 0 {
				vs[j] = vals[key{c, s}] / best
			}
		}
		bc, err := plotter.NewBarChart(vs, w)
		if err != nil {
			return nil, 0, err
		}
		bc.Horizontal = true
		bc.LineStyle.Width = 0
		bc.Color = serverColor(s)
		bc.Offset = w * vg.Length(float64(n-1)/2-float64(i))
		p.Add(bc)
		p.Legend.Add(s, bc)
	}
	p.NominalY(rev...)
	p.Add(plotter.NewGrid())
	return p, len(cases) * (n + 1), nil
}

// serverColor gives each server the same colour in every panel.
func serverColor(name string) color.Color {
	palette := map[string]color.RGBA{
		"wsgate":      {0xd6, 0x27, 0x28, 0xff},
		"gorilla":     {0x1f, 0x77, 0xb4, 0xff},
		"coder":       {0x2c, 0xa0, 0x2c, 0xff},
		"gws":         {0xff, 0x7f, 0x0e, 0xff},
		"nbio":        {0x94, 0x67, 0xbd, 0xff},
		"tcp":         {0x7f, 0x7f, 0x7f, 0xff},
		"mod_wsgate":  {0xe3, 0x77, 0xc2, 0xff},
		"httpd proxy": {0x8c, 0x56, 0x4b, 0xff},
		// The proxy group: its upstream is gws, and its floor is grey
		// as tcp, the echo group's floor, is.
		"upstream alone":   {0xff, 0x7f, 0x0e, 0xff},
		"nginx":            {0x17, 0xbe, 0xcf, 0xff},
		"go relay (floor)": {0x7f, 0x7f, 0x7f, 0xff},
		// The auth group.
		"no auth":   {0x63, 0x79, 0x39, 0xff},
		"JWT HS256": {0xbc, 0xbd, 0x22, 0xff},
		"JWT RS256": {0x39, 0x3b, 0x79, 0xff},
		"JWT ES256": {0x8c, 0x6d, 0x31, 0xff},
		"JWT EdDSA": {0x7b, 0x41, 0x73, 0xff},
	}
	if c, ok := palette[name]; ok {
		return c
	}
	// Any other server: a colour from its name, not black for all.
	others := []color.RGBA{
		{0x17, 0xbe, 0xcf, 0xff}, {0xbc, 0xbd, 0x22, 0xff}, {0x39, 0x3b, 0x79, 0xff}, {0x8c, 0x6d, 0x31, 0xff},
		{0x63, 0x79, 0x39, 0xff}, {0x84, 0x3c, 0x39, 0xff}, {0x7b, 0x41, 0x73, 0xff}, {0x31, 0x82, 0xbd, 0xff},
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return others[h.Sum32()%uint32(len(others))]
}
