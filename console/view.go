package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var funcs = template.FuncMap{
	"ms":           msAge,
	"rate":         formatRate,
	"short":        shorten,
	"count":        func(n int64) string { return group(n) },
	"deref":        func(p *int64) string { return derefLen(p) },
	"add":          func(a, b int) int { return a + b },
	"timefmt":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"plural":       plural,
	"hasValue":     func(p *int64) bool { return p != nil },
	"redact":       redact,
	"redactStored": redactStored,
}

// msAge is a duration given in milliseconds, short: "850ms", "12s",
// "3m20s", "5h3m", "2d4h"; "-" when unknown.
func msAge(p *int64) string {
	if p == nil {
		return "-"
	}
	return age(time.Duration(*p) * time.Millisecond)
}

func age(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// formatRate is a rate per second: "0", "0.4/s", "12/s", "1,250/s".
func formatRate(r float64) string {
	switch {
	case r <= 0 || math.IsNaN(r):
		return "0/s"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	}
	return group(int64(math.Round(r))) + "/s"
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func derefLen(p *int64) string {
	if p == nil {
		return "?"
	}
	return group(*p)
}

// shorten cuts s to n runes, marking the cut.
func shorten(n int, s string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// chart is a small line chart of a series, drawn as an SVG polyline.
type chart struct {
	Label  string
	Points string // "x,y x,y ..." in a 0..W x 0..H box
	Last   string // the latest value, formatted
	Max    string // the top of the scale, formatted
	Span   string // the time the series covers
	W, H   int
	Empty  bool
}

const chartW, chartH = 240, 48

// newChart draws values (oldest first, one per reading over span),
// formatted by format.
func newChart(label string, values []float64, span time.Duration, format func(float64) string) chart {
	c := chart{Label: label, W: chartW, H: chartH, Span: age(span), Empty: len(values) < 2}
	if len(values) == 0 {
		c.Last, c.Max = format(0), format(0)
		return c
	}
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	c.Last, c.Max = format(values[len(values)-1]), format(top)
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	for i, v := range values {
		x := 0.0
		if len(values) > 1 {
			x = float64(i) * chartW / float64(len(values)-1)
		}
		y := chartH - 2 - v/top*(chartH-4)
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
	}
	c.Points = b.String()
	return c
}

func formatCount(v float64) string { return group(int64(math.Round(v))) }
