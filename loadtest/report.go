package loadtest

import (
	"fmt"
	"io"
	"strings"
)

// Report is the outcome of a run. Its JSON form (resc-load --json) only
// gains fields over time; durations are in milliseconds or seconds as
// their names say, memory in MiB.
type Report struct {
	Mode         string  `json:"mode"`
	Replicas     int     `json:"replicas"`
	Set          bool    `json:"set"`
	Listener     bool    `json:"listener_channel"`
	FetchDelayMS float64 `json:"fetch_delay_ms,omitempty"`
	Feed         string  `json:"feed,omitempty"`
	Observe      string  `json:"observe,omitempty"`
	GapMS        float64 `json:"gap_ms,omitempty"`
	Prefix       string  `json:"key_prefix"`
	Machine      Machine `json:"machine"`

	// Events were pushed; Seconds from the first push (throughput: from
	// the moment the preloaded events appeared) to the last task visible.
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	OfferedRate  float64 `json:"offered_rate,omitempty"`
	// Latency is push → task visible (rate, idle and k6 modes).
	Latency *Latency `json:"latency,omitempty"`
	// ProducerLag is how late the rate mode's producer pushed each event
	// against its schedule; a large one means the rate was not offered.
	ProducerLag *Latency `json:"producer_lag,omitempty"`
	// Memory of each replica, and of the private redis-server.
	Memory []Memory `json:"memory"`

	Baseline *BaselineReport `json:"baseline,omitempty"`
	// Ratio compares resc-go with the baseline: events/s over the
	// baseline's (throughput), or the baseline's p50 latency over
	// resc-go's (idle); 0 when not comparable. RatioOf says which.
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`

	Check *Check   `json:"check,omitempty"`
	K6    *K6      `json:"k6,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs         int    `json:"cpus"`
	CPU          string `json:"cpu_model"`
	Go           string `json:"go"`
	Redis        string `json:"redis"`
	RedisPrivate bool   `json:"redis_private"`
	Resc         string `json:"resc"`
}

// BaselineReport is the baseline's measurement.
type BaselineReport struct {
	Events       int      `json:"events"`
	Seconds      float64  `json:"seconds"`
	EventsPerSec float64  `json:"events_per_s"`
	Latency      *Latency `json:"latency,omitempty"`
}

func (r *Report) ratio() {
	b := r.Baseline
	switch {
	case r.Mode == ModeIdle && b.Latency != nil && r.Latency != nil && r.Latency.P50 > 0:
		r.Ratio, r.RatioOf = b.Latency.P50/r.Latency.P50, "baseline p50 latency / resc-go p50 latency"
	case r.Mode == ModeThroughput && b.EventsPerSec > 0:
		r.Ratio, r.RatioOf = r.EventsPerSec/b.EventsPerSec, "resc-go events/s / baseline events/s"
	case b.EventsPerSec > 0:
		r.Ratio, r.RatioOf = r.EventsPerSec/b.EventsPerSec, "resc-go events/s at the offered rate / baseline capacity (events/s)"
	}
}

// describe is the run's configuration in one line.
func (r *Report) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %d replica(s), ", r.Mode, r.Replicas)
	if r.Set {
		b.WriteString("rule with set")
	} else {
		b.WriteString("rule without set")
	}
	if r.FetchDelayMS > 0 {
		fmt.Fprintf(&b, " and a fetch of %gms", r.FetchDelayMS)
	}
	if r.Listener {
		b.WriteString(", listener on")
	} else {
		b.WriteString(", listener off")
	}
	switch r.Mode {
	case ModeThroughput:
		fmt.Fprintf(&b, ", %d events (%s)", r.Events, r.Feed)
	case ModeRate:
		fmt.Fprintf(&b, ", %d events at %.0f/s, observed by %s", r.Events, r.OfferedRate, r.Observe)
	case ModeIdle:
		fmt.Fprintf(&b, ", %d single events %gms apart, observed by %s", r.Events, r.GapMS, r.Observe)
	case ModeK6:
		if r.OfferedRate > 0 {
			fmt.Fprintf(&b, ", k6 pushing %.0f/s", r.OfferedRate)
		} else {
			b.WriteString(", k6 pushing as fast as it can")
		}
	}
	return b.String()
}

func latencyLine(l *Latency) string {
	return fmt.Sprintf("p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (mean %.3f ms, %d events)",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "resc-load: %s\n", r.describe())
	m := r.Machine
	where := "private"
	if !m.RedisPrivate {
		where = "given by --redis-url"
	}
	fmt.Fprintf(w, "  machine     %d CPUs (%s), %s, redis %s (%s), resc %s\n", m.CPUs, m.CPU, m.Go, m.Redis, where, m.Resc)
	switch r.Mode {
	case ModeIdle:
		fmt.Fprintf(w, "  resc-go     %d single events over %.3f s\n", r.Events, r.Seconds)
	case ModeK6:
		fmt.Fprintf(w, "  resc-go     the tasks of the %d events k6 pushed all visible %.3f s after k6 started\n", r.Events, r.Seconds)
	default:
		fmt.Fprintf(w, "  resc-go     %d events in %.3f s = %.0f events/s\n", r.Events, r.Seconds, r.EventsPerSec)
	}
	if r.Latency != nil {
		fmt.Fprintf(w, "  latency     %s\n", latencyLine(r.Latency))
	}
	if r.ProducerLag != nil {
		fmt.Fprintf(w, "  push lag    p99 %.3f ms, max %.3f ms behind schedule\n", r.ProducerLag.P99, r.ProducerLag.Max)
	}
	for _, mem := range r.Memory {
		growth := "too short for a growth slope"
		if len(mem.Samples) >= minSlopeSamples {
			growth = fmt.Sprintf("growth %+.2f MiB/min over the 2nd half", mem.Slope)
		}
		fmt.Fprintf(w, "  memory      %-12s RSS start %.1f MiB, peak %.1f MiB, end %.1f MiB; %s (%d samples)\n",
			mem.Name, mem.Start, mem.Peak, mem.End, growth, len(mem.Samples))
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "  baseline    %d events in %.3f s = %.0f events/s (resc's algorithm: one connection, one round trip per command)\n", b.Events, b.Seconds, b.EventsPerSec)
		if b.Latency != nil {
			fmt.Fprintf(w, "  baseline    latency %s\n", latencyLine(b.Latency))
		}
	}
	if r.Ratio > 0 {
		fmt.Fprintf(w, "  ratio       %.1fx (%s)\n", r.Ratio, r.RatioOf)
	}
	if r.K6 != nil {
		fmt.Fprintf(w, "  k6          %d events pushed in %.1f s (%.0f/s by k6), %d tasks seen by its observer\n", r.K6.Pushed, r.K6.Seconds, r.K6.PushRate, r.K6.Seen)
	}
	if r.Check != nil {
		fmt.Fprintf(w, "  check       %s\n", r.Check)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note        %s\n", n)
	}
}
