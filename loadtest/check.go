package loadtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/resc-go/resc/internal/takenlist"
)

// tally counts the tasks seen of each event of a measurement, events being
// numbered from 0 (their seq). It needs one byte per event. Not safe for
// concurrent use.
type tally struct {
	counts     []uint8 // by seq, saturating at 255
	unexpected []string
	tasks      int
}

func newTally(events int) *tally { return &tally{counts: make([]uint8, events)} }

// add counts one task. A task that names no event of the measurement is
// unexpected.
func (t *tally) add(task string) {
	t.tasks++
	seq, _, ok := parseTask(task)
	if !ok || seq >= len(t.counts) {
		if len(t.unexpected) < 10 {
			t.unexpected = append(t.unexpected, task)
		} else {
			t.unexpected[len(t.unexpected)-1] = "..."
		}
		return
	}
	if t.counts[seq] < 255 {
		t.counts[seq]++
	}
}

// Check is what the exactly-once checker found after a run.
type Check struct {
	// Events is the number of events pushed (seq 0 to Events-1).
	Events int `json:"events"`
	// Tasks is the number of tasks found: popped by the observer during
	// the run plus those left in the task queue.
	Tasks int `json:"tasks"`
	// Missing and Duplicated count the events with no task and with more
	// than one; MissingSeqs and DuplicatedSeqs show the first ten.
	Missing        int   `json:"missing"`
	Duplicated     int   `json:"duplicated"`
	MissingSeqs    []int `json:"missing_seqs,omitempty"`
	DuplicatedSeqs []int `json:"duplicated_seqs,omitempty"`
	// Unexpected are tasks that name no event of the run (the first ten).
	Unexpected []string `json:"unexpected,omitempty"`
	// Left is what remained where nothing should: events in the input
	// queue, in taken lists, in the dead-letter list, by key.
	Left map[string]int64 `json:"left,omitempty"`
	// Duplicates says whether a duplicate could be seen at all: false for
	// a rule with a dedup set, whose set hides a second push of a task.
	Duplicates bool `json:"duplicates_visible"`
	OK         bool `json:"ok"`
}

// verdict fills the counts of c from t.
func (t *tally) verdict(c *Check) {
	c.Events = len(t.counts)
	c.Tasks = t.tasks
	c.Unexpected = t.unexpected
	for seq, n := range t.counts {
		switch {
		case n == 0:
			c.Missing++
			if len(c.MissingSeqs) < 10 {
				c.MissingSeqs = append(c.MissingSeqs, seq)
			}
		case n > 1:
			c.Duplicated++
			if len(c.DuplicatedSeqs) < 10 {
				c.DuplicatedSeqs = append(c.DuplicatedSeqs, seq)
			}
		}
	}
	c.OK = c.Missing == 0 && c.Duplicated == 0 && len(c.Unexpected) == 0 && len(c.Left) == 0
}

// String is the one-line verdict of the report.
func (c *Check) String() string {
	what := "each event's task exactly once"
	if !c.Duplicates {
		what = "each event's task present (no loss; the dedup set hides duplicates: use --set=false to see them)"
	}
	if c.OK {
		return fmt.Sprintf("ok: %d events, %d tasks, %s", c.Events, c.Tasks, what)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "FAILED: %d events, %d tasks", c.Events, c.Tasks)
	if c.Missing > 0 {
		fmt.Fprintf(&b, "; %d missing (seq %s)", c.Missing, seqList(c.MissingSeqs, c.Missing))
	}
	if c.Duplicated > 0 {
		fmt.Fprintf(&b, "; %d duplicated (seq %s)", c.Duplicated, seqList(c.DuplicatedSeqs, c.Duplicated))
	}
	if len(c.Unexpected) > 0 {
		fmt.Fprintf(&b, "; unexpected tasks %q", c.Unexpected)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Left)) {
		fmt.Fprintf(&b, "; %d left in %s", c.Left[k], k)
	}
	return b.String()
}

func seqList(seqs []int, n int) string {
	s := make([]string, len(seqs))
	for i, v := range seqs {
		s[i] = strconv.Itoa(v)
	}
	if n > len(seqs) {
		s = append(s, "...")
	}
	return strings.Join(s, ",")
}

// check reads what is left of a run in Redis and gives the verdict: the
// tasks in the task lists (added to those t already counted, popped by an
// observer), and every place an event could still be (input queue, taken
// lists of any replica, dead-letter list). It only reads.
func check(ctx context.Context, rdb redis.Cmdable, k keys, t *tally, taskLists ...string) (*Check, error) {
	c := &Check{Left: map[string]int64{}}
	if err := collect(ctx, rdb, k, t, c, taskLists...); err != nil {
		return nil, err
	}
	t.verdict(c)
	return c, nil
}

// collect adds the tasks in taskLists to t, and to c.Left the lists of
// one system (k) still holding events.
func collect(ctx context.Context, rdb redis.Cmdable, k keys, t *tally, c *Check, taskLists ...string) error {
	for _, l := range taskLists {
		if err := readList(ctx, rdb, l, t.add); err != nil {
			return err
		}
	}
	lists := []string{k.input, k.deadList(), k.taken}
	taken, err := takenlist.New([]takenlist.Queues{{InputQueue: k.input, TakenQueue: k.taken}}).Find(ctx, rdb, k.taken)
	if err != nil {
		return fmt.Errorf("loadtest: check: %w", err)
	}
	for _, l := range taken {
		lists = append(lists, l.Key)
	}
	for _, l := range lists {
		n, err := rdb.LLen(ctx, l).Result()
		if err != nil {
			return fmt.Errorf("loadtest: check: LLEN %s: %w", l, err)
		}
		if n > 0 {
			c.Left[l] = n
		}
	}
	return nil
}

// readList calls f with every element of a list, reading it in chunks.
func readList(ctx context.Context, rdb redis.Cmdable, key string, f func(string)) error {
	const chunk = 10000
	for start := int64(0); ; start += chunk {
		vals, err := rdb.LRange(ctx, key, start, start+chunk-1).Result()
		if err != nil {
			return fmt.Errorf("loadtest: check: LRANGE %s: %w", key, err)
		}
		for _, v := range vals {
			f(v)
		}
		if len(vals) < chunk {
			return nil
		}
	}
}
