package loadtest

import (
	"fmt"
	"io"
)

// ClusterReport is the outcome of a cluster run. Its JSON form only gains
// fields over time.
type ClusterReport struct {
	Masters  int     `json:"masters"`
	Replicas int     `json:"replicas"`
	Prefix   string  `json:"key_prefix"`
	Machine  Machine `json:"machine"`
	// Events were preloaded; Seconds from the renames into the input
	// queues to the last task visible.
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	// PerMaster is each master's Redis load over the measurement.
	PerMaster []MasterLoad `json:"per_master"`
	// CPUPerEvent is the mean over the masters of their main-thread CPU
	// time per event handled (µs), and Ceiling the events/s one master
	// saturates at with that cost (10⁶ / CPUPerEvent): the throughput
	// each added master adds to what Redis can carry, given replicas
	// enough to drive it.
	CPUPerEvent float64  `json:"cpu_us_per_event"`
	Ceiling     float64  `json:"ceiling_events_per_s_per_master"`
	Check       *Check   `json:"check"`
	Notes       []string `json:"notes,omitempty"`
}

// MasterLoad is one master's share of a cluster run.
type MasterLoad struct {
	Addr     string `json:"addr"`
	Watchers int    `json:"watchers"`
	// Shared tells whether it holds the shared keys (registry, leader
	// lock, counters): they cost per heartbeat, not per event.
	Shared bool `json:"shared_keys"`
	// Events is how many events its watchers handled.
	Events int `json:"events"`
	// CPUSec is the main thread's CPU time (INFO cpu, user + system),
	// CPUPerEvent the same per event in µs.
	CPUSec      float64 `json:"cpu_s"`
	CPUPerEvent float64 `json:"cpu_us_per_event"`
	// Commands are INFO commandstats, busiest first. A command a script
	// runs is counted both under its own name and in the script's time.
	Commands []CommandLoad `json:"commands"`
}

// CommandLoad is one line of INFO commandstats, per event.
type CommandLoad struct {
	Name          string  `json:"name"`
	Calls         int64   `json:"calls"`
	Usec          int64   `json:"usec"`
	CallsPerEvent float64 `json:"calls_per_event"`
	UsecPerEvent  float64 `json:"usec_per_event"`
}

// WriteText writes the report for a reader.
func (r *ClusterReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "resc-load cluster: %d master(s), one watcher each, %d replica(s), %d events\n", r.Masters, r.Replicas, r.Events)
	fmt.Fprintf(w, "machine: %d CPUs %s, %s, redis %s, %s\n", r.Machine.CPUs, r.Machine.CPU, r.Machine.Go, r.Machine.Redis, r.Machine.Resc)
	fmt.Fprintf(w, "throughput: %.0f events/s (%.2f s)\n", r.EventsPerSec, r.Seconds)
	for _, m := range r.PerMaster {
		shared := ""
		if m.Shared {
			shared = ", shared keys"
		}
		fmt.Fprintf(w, "master %s (%d watcher(s)%s): %d events, main thread %.3f s CPU = %.2f µs/event\n", m.Addr, m.Watchers, shared, m.Events, m.CPUSec, m.CPUPerEvent)
		for _, c := range m.Commands[:min(len(m.Commands), 6)] {
			fmt.Fprintf(w, "  %-14s %8.3f calls/event %8.3f µs/event\n", c.Name, c.CallsPerEvent, c.UsecPerEvent)
		}
	}
	fmt.Fprintf(w, "Redis CPU per event: %.2f µs (mean over masters); ceiling per master: %.0f events/s\n", r.CPUPerEvent, r.Ceiling)
	if r.Check != nil {
		fmt.Fprintf(w, "check: %s\n", r.Check)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
