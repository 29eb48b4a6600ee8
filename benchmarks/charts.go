package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// A chart is one PNG under docs/img/.
type chart struct {
	file  string // name under img/
	title string // alt text and caption in the md
}

// Charts written by writeCharts, in the order the md shows them.
var charts = []chart{
	{"throughput.png", "Decisions per second (log scale), unlimited demand"},
	{"p99.png", "p99 latency of one decision, µs (log scale)"},
	{"redis_calls.png", "Redis calls per 1,000 decisions (log scale)"},
	{"accuracy.png", "Accuracy at a real limit (" + fmtLimit(accuracyLimit) + "), hot key: overadmission and false denials, % of ideal"},
}

// logFloor is the smallest value drawn on a log axis; zeros and smaller
// values are drawn at it (a log axis has no zero).
const logFloor = 1e-3

// implColors and implGlyphs tell the implementations apart in colour and
// in shape, so the charts also read in grey.
var (
	implColors = map[impl]color.Color{
		implLease:       color.RGBA{R: 0x1b, G: 0x9e, B: 0x77, A: 0xff},
		implTokenBucket: color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff},
		implRedisRate:   color.RGBA{R: 0x75, G: 0x70, B: 0xb3, A: 0xff},
	}
	implGlyphs = map[impl]draw.GlyphDrawer{
		implLease:       draw.CircleGlyph{},
		implTokenBucket: draw.TriangleGlyph{},
		implRedisRate:   draw.SquareGlyph{},
	}
)

// writeCharts writes every chart of rs into dir.
func writeCharts(dir string, rs []result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tp := throughputRows(rs)
	metrics := []struct {
		file, title, ylabel string
		value               func(result) float64
	}{
		{charts[0].file, charts[0].title, "decisions/s", result.throughput},
		{charts[1].file, charts[1].title, "p99 latency (µs)", func(r result) float64 { return float64(r.p99.Nanoseconds()) / 1e3 }},
		{charts[2].file, charts[2].title, "Redis calls per 1,000 decisions", result.callsPer1k},
	}
	for _, m := range metrics {
		p, err := workloadChart(tp, m.title, m.ylabel, m.value)
		if err != nil {
			return fmt.Errorf("%s: %w", m.file, err)
		}
		if err := p.Save(10*vg.Inch, 5*vg.Inch, filepath.Join(dir, m.file)); err != nil {
			return fmt.Errorf("%s: %w", m.file, err)
		}
	}
	return accuracyChart(filepath.Join(dir, charts[3].file), accuracyRows(rs))
}

// workloadChart plots value of each throughput row on a log axis: one
// series per implementation, workloads along x, with a line joining 1, 8
// and 64 goroutines of the same instances and keys.
func workloadChart(rs []result, title, ylabel string, value func(result) float64) (*plot.Plot, error) {
	ws := throughputWorkloads()
	idx := make(map[workload]int, len(ws))
	names := make([]string, len(ws))
	for i, w := range ws {
		idx[w] = i
		names[i] = w.short()
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.X.Label.Text = "instances (i), goroutines per instance (g), keys (hot or 10,000 uniform)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YTop
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	for _, im := range impls {
		var segs []plotter.XYs // runs of consecutive workloads (1, 8, 64 goroutines)
		for _, r := range rs {
			if r.impl != im {
				continue
			}
			i, ok := idx[r.w]
			if !ok {
				continue
			}
			pt := plotter.XY{X: float64(i), Y: math.Max(value(r), logFloor)}
			if n := len(segs); n > 0 && int(segs[n-1][len(segs[n-1])-1].X) == i-1 && i%3 != 0 {
				segs[n-1] = append(segs[n-1], pt)
			} else {
				segs = append(segs, plotter.XYs{pt})
			}
		}
		for k, seg := range segs {
			l, s, err := plotter.NewLinePoints(seg)
			if err != nil {
				return nil, err
			}
			l.Color = implColors[im]
			l.Width = vg.Points(1.5)
			s.Color = implColors[im]
			s.Shape = implGlyphs[im]
			s.Radius = vg.Points(3.5)
			p.Add(l, s)
			if k == 0 {
				p.Legend.Add(im.String(), l, s)
			}
		}
	}
	p.Y.Max *= 20 // a decade and more above the data for the legend
	return p, nil
}

// accuracyChart writes two bar charts side by side: overadmission and false
// denials, grouped by workload, one bar per implementation.
func accuracyChart(file string, rs []result) error {
	ws := accuracyWorkloads()
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = fmt.Sprintf("%d inst, %s", w.instances, w.demandLabel())
	}
	panels := []struct {
		title string
		value func(result) float64
	}{
		{"Overadmitted, % of ideal", result.overadmitPct},
		{"Falsely denied, % of ideal", result.falseDenyPct},
	}
	row := make([]*plot.Plot, len(panels))
	for j, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = "%"
		p.Y.Min = 0
		p.NominalX(names...)
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		width := vg.Points(14)
		allZero := true
		for k, im := range impls {
			vals := make(plotter.Values, len(ws))
			for i, w := range ws {
				for _, r := range rs {
					if r.impl == im && r.w == w {
						vals[i] = pn.value(r)
						allZero = allZero && vals[i] == 0
					}
				}
			}
			b, err := plotter.NewBarChart(vals, width)
			if err != nil {
				return err
			}
			b.Color = implColors[im]
			b.LineStyle.Width = 0
			b.Offset = vg.Length(k-1) * width
			p.Add(b)
			p.Legend.Add(im.String(), b)
		}
		if allZero {
			p.Title.Text += ": 0 in every row"
		}
		// Room above the tallest bar for the legend, a visible axis when
		// every bar is zero, and half a category of margin on each side
		// so the outer groups' bars are not cut.
		p.Y.Max = math.Max(p.Y.Max*1.35, 1)
		p.X.Min, p.X.Max = -0.5, float64(len(ws))-0.5
		row[j] = p
	}
	img := vgimg.New(12*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	t := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Points(24), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{row}, t, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	return savePNG(file, img)
}

// savePNG writes img to file as a PNG.
func savePNG(file string, img *vgimg.Canvas) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
