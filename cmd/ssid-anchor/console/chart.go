package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"
)

// Chart geometry, in SVG user units; CSS scales the whole drawing to the
// page width.
const (
	chartW, chartH = 960.0, 280.0
	padL, padR     = 60.0, 18.0
	padT, padB     = 16.0, 40.0
)

// chartScale maps a reading to the drawing.
type chartScale struct {
	t0, t1 int64
	lo, hi float64
}

func (s chartScale) x(t time.Time) float64 {
	if s.t1 == s.t0 {
		return padL + (chartW-padL-padR)/2
	}
	return padL + float64(t.Unix()-s.t0)/float64(s.t1-s.t0)*(chartW-padL-padR)
}

func (s chartScale) y(v float64) float64 {
	return padT + (s.hi-v)/(s.hi-s.lo)*(chartH-padT-padB)
}

// scoreChart draws the compliance score over time as inline SVG, with the
// minimum and critical thresholds as lines. It is drawn on the server, so
// the page needs no script; colours come from CSS classes, so dark mode
// applies (and the CSP, which forbids inline styles, holds).
//
// Hand-written because it is a few dozen lines of SVG and no well-kept Go
// charting library draws server-side SVG without pulling in a font stack.
func scoreChart(points []Point, min, critical float64) template.HTML {
	pts := slices.Clone(points)
	slices.SortStableFunc(pts, func(a, b Point) int { return a.Date.Compare(b.Date) })
	lowest := pts[0].Score
	for _, p := range pts {
		lowest = math.Min(lowest, p.Score)
	}
	for _, t := range []float64{min, critical} {
		if t > 0 {
			lowest = math.Min(lowest, t)
		}
	}
	s := chartScale{t0: pts[0].Date.Unix(), t1: pts[len(pts)-1].Date.Unix(), hi: 100}
	for _, p := range pts {
		s.hi = math.Max(s.hi, p.Score)
	}
	s.lo = math.Max(0, math.Floor((lowest-5)/5)*5)
	if s.hi-s.lo < 10 {
		s.lo = math.Max(0, s.hi-10)
	}

	var b strings.Builder
	desc := fmt.Sprintf("%d readings from %s to %s", len(pts), pts[0].Label, pts[len(pts)-1].Label)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="chart-title chart-desc" data-lo="%g" data-hi="%g">`, chartW, chartH, s.lo, s.hi)
	fmt.Fprintf(&b, `<title id="chart-title">Compliance score over time</title><desc id="chart-desc">%s</desc>`, html.EscapeString(desc))

	// Horizontal grid with score labels every step.
	step := 5.0
	if s.hi-s.lo > 40 {
		step = 10
	}
	if s.hi-s.lo > 80 {
		step = 20
	}
	for v := s.lo; v <= s.hi+1e-9; v += step {
		y := s.y(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text class="axis y" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-8, y+4, num(v))
	}

	// Area under the line, then the line, then the points on top.
	var line strings.Builder
	for i, p := range pts {
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", s.x(p.Date), s.y(p.Score))
	}
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<polygon class="area" points="%.1f,%.1f %s %.1f,%.1f"/>`, s.x(pts[0].Date), chartH-padB, line.String(), s.x(pts[len(pts)-1].Date), chartH-padB)
		fmt.Fprintf(&b, `<polyline class="line" points="%s"/>`, line.String())
	}

	// Thresholds.
	for _, th := range []struct {
		name  string
		value float64
	}{{"min", min}, {"critical", critical}} {
		if th.value <= 0 || th.value < s.lo || th.value > s.hi {
			continue
		}
		y := s.y(th.value)
		fmt.Fprintf(&b, `<line class="th th-%s" data-threshold="%s" data-value="%s" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, th.name, th.name, num(th.value), padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text class="th-label th-%s" x="%.1f" y="%.1f" text-anchor="start">%s %s</text>`, th.name, padL+8, y-5, th.name, num(th.value))
	}

	// X labels: the last point's, then going back, every point that
	// leaves room for its label (dates crowd where rows are close). The
	// outermost two are anchored inside the drawing, so neither is cut at
	// its edge, and marked "edge": a phone, where the drawing is a third
	// of its size, shows only those, larger (console.css).
	const labelGap = 100.0
	var xs []int
	lastX := math.Inf(1)
	for i := len(pts) - 1; i >= 0; i-- {
		x := s.x(pts[i].Date)
		if lastX-x < labelGap {
			continue
		}
		lastX = x
		xs = append(xs, i)
	}
	for k, i := range xs {
		cls, anchor := "axis x", "middle"
		switch {
		case k == 0:
			cls, anchor = "axis x edge", "end"
			if len(xs) == 1 {
				anchor = "middle"
			}
		case k == len(xs)-1:
			cls, anchor = "axis x edge", "start"
		}
		fmt.Fprintf(&b, `<text class="%s" x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, cls, s.x(pts[i].Date), chartH-padB+20, anchor, html.EscapeString(pts[i].Label))
	}

	for _, p := range pts {
		cls := scoreClass(p.Score, min, critical)
		fmt.Fprintf(&b, `<circle class="pt %s" cx="%.1f" cy="%.1f" r="4.5" data-date="%s" data-score="%s" data-line="%d"><title>%s: %s (%s)</title></circle>`,
			cls, s.x(p.Date), s.y(p.Score), html.EscapeString(p.Label), num(p.Score), p.Line,
			html.EscapeString(p.Label), num(p.Score), plural(p.Violations, "violation"))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
