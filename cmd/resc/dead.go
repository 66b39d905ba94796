package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/inspect"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redisconn"
)

const deadUsage = `usage:
  resc dead list    [--queue Q] [--redis-url URL] [--json] [--limit N] CONFIG
  resc dead requeue [--queue Q] [--redis-url URL] (--index N... | --all | --match REGEXP) [--raw] [--dry-run] CONFIG
  resc dead drop    [--queue Q] [--redis-url URL] (--index N... | --all | --match REGEXP) [--dry-run] CONFIG
`

// deadTarget is the watcher a `resc dead` command works on.
type deadTarget struct {
	rdb   *redisconn.Client
	in    *inspect.Inspector
	input string // the watcher's input queue
}

// deadFlags are the flags of every `resc dead` command.
type deadFlags struct {
	fs    *flag.FlagSet
	queue string
	url   string
}

func newDeadFlags(name string, stderr io.Writer) *deadFlags {
	f := &deadFlags{fs: newFlags("dead "+name, stderr)}
	f.fs.Usage = func() {
		fmt.Fprint(stderr, deadUsage)
		f.fs.PrintDefaults()
	}
	f.fs.StringVar(&f.queue, "queue", "", "the input queue `Q` of the watcher (required when CONFIG has several)")
	f.fs.StringVar(&f.url, "redis-url", os.Getenv("RESC_REDIS_URL"), "Redis `URL`, overriding the configuration's")
	return f
}

// parse parses args, which must give CONFIG alone.
func (f *deadFlags) parse(args []string) (config string, err error) {
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return "", &exitError{code: 2}
	}
	if len(pos) != 1 {
		return "", f.usage("want one CONFIG, got %d argument(s)", len(pos))
	}
	return pos[0], nil
}

// usage prints the usage and returns an exit error (code 2) of the message.
func (f *deadFlags) usage(format string, args ...any) error {
	f.fs.Usage()
	return &exitError{code: 2, msg: f.fs.Name() + ": " + fmt.Sprintf(format, args...)}
}

// open loads the configuration, picks the watcher of --queue and
// connects to Redis.
func (f *deadFlags) open(ctx context.Context, path string, stderr io.Writer) (*deadTarget, error) {
	l, err := load(path)
	if err != nil {
		return nil, reportLoad(stderr, err)
	}
	w, err := f.watcher(l.cfg)
	taskQueue := errors.Is(err, errNotWatched)
	if err != nil && !taskQueue {
		return nil, err
	}
	rdb, err := opsConnect(ctx, f.url, l.cfg)
	if err != nil {
		return nil, err
	}
	in := inspect.New(rdb.UniversalClient, l.cfg, inspect.Options{})
	if taskQueue {
		w.InputQueue = f.queue
		if err := in.DeadQueue(ctx, w.InputQueue); errors.Is(err, inspect.ErrNoWatcher) {
			rdb.Close()
			return nil, f.usage("no watcher has input queue %q, and no worker of the Go SDK announced it as its task queue", f.queue)
		} else if err != nil {
			rdb.Close()
			return nil, err
		}
	}
	return &deadTarget{rdb: rdb, in: in, input: w.InputQueue}, nil
}

func (f *deadFlags) watcher(cfg *config.Config) (config.Watcher, error) {
	if f.queue == "" {
		if len(cfg.Watchers) == 1 {
			return cfg.Watchers[0], nil
		}
		queues := make([]string, len(cfg.Watchers))
		for i, w := range cfg.Watchers {
			queues[i] = strconv.Quote(w.InputQueue)
		}
		return config.Watcher{}, f.usage("the configuration has %d watchers: choose one with --queue (%s)", len(cfg.Watchers), strings.Join(queues, ", "))
	}
	for _, w := range cfg.Watchers {
		if w.InputQueue == f.queue {
			return w, nil
		}
	}
	// Perhaps the task queue of SDK workers: open checks it in Redis.
	return config.Watcher{}, errNotWatched
}

// errNotWatched: --queue names no watcher's input queue.
var errNotWatched = errors.New("not the input queue of a watcher")

// cmdDead is `resc dead list|requeue|drop [flags] CONFIG`.
func cmdDead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, deadUsage)
		return &exitError{code: 2, msg: "dead: want list, requeue or drop"}
	}
	switch args[0] {
	case "list":
		return cmdDeadList(ctx, args[1:], stdout, stderr)
	case "requeue", "drop":
		return cmdDeadMove(ctx, args[0], args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, deadUsage)
		return nil
	}
	fmt.Fprint(stderr, deadUsage)
	return &exitError{code: 2, msg: fmt.Sprintf("dead: unknown command %q: want list, requeue or drop", args[0])}
}

// deadListDoc is the output of `resc dead list --json` (README: "resc dead").
type deadListDoc struct {
	Queue    string          `json:"queue"`
	DeadList string          `json:"dead_list"`
	Length   int64           `json:"length"`
	Entries  []deadListEntry `json:"entries"`
}

// deadListEntry is an entry of deadListDoc: the fields of the entry, or raw
// (raw_base64 when it is not valid UTF-8) for what is not an entry.
type deadListEntry struct {
	Index int64 `json:"index"`
	*deadletter.Entry
	Raw       *string `json:"raw,omitempty"`
	RawBase64 string  `json:"raw_base64,omitempty"`
}

// cmdDeadList is `resc dead list`: the entries, oldest first, numbered
// from 1 (the oldest) as requeue and drop's --index take them.
func cmdDeadList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newDeadFlags("list", stderr)
	asJSON := f.fs.Bool("json", false, "print one JSON document")
	limit := f.fs.Int64("limit", 0, "show the `N` newest entries only (default: all)")
	path, err := f.parse(args)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return f.usage("--limit %d: want a positive number", *limit)
	}
	t, err := f.open(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer t.rdb.Close()
	dl, err := t.in.DeadLetters(ctx, t.input, *limit)
	if err != nil {
		return deadFailed(t.rdb, err)
	}
	if *asJSON {
		doc := deadListDoc{Queue: dl.Queue, DeadList: dl.DeadList, Length: dl.Length, Entries: make([]deadListEntry, len(dl.Records))}
		for i, r := range dl.Records {
			doc.Entries[i] = deadListEntry{Index: r.Position, Entry: r.Entry}
			if r.Entry == nil {
				doc.Entries[i].Raw = &r.Stored
				if !utf8.ValidString(r.Stored) {
					doc.Entries[i].RawBase64 = base64.StdEncoding.EncodeToString([]byte(r.Stored))
				}
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	fmt.Fprintf(stdout, "%s: %d entr%s", dl.DeadList, dl.Length, plural(dl.Length, "y", "ies"))
	if int64(len(dl.Records)) < dl.Length {
		fmt.Fprintf(stdout, ", the %d newest shown", len(dl.Records))
	}
	fmt.Fprintln(stdout)
	if len(dl.Records) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTIME\tREPLICA\tREPLAYS\tEVENT\tREASON")
	for _, r := range dl.Records {
		if r.Entry == nil {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t%s\t(not a dead-letter entry: pushed by hand?)\n", r.Position, printable(r.Stored))
			continue
		}
		replays := "-"
		if r.Entry.Count != nil {
			replays = strconv.Itoa(*r.Entry.Count)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Position, cell(r.Entry.Time), cell(r.Entry.Replica), replays, printable(r.Event()), cell(r.Entry.Reason))
	}
	return tw.Flush()
}

// indexes is the repeatable --index flag.
type indexes []int64

func (ix *indexes) String() string { return fmt.Sprint(*ix) }

func (ix *indexes) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return fmt.Errorf("want a position of `resc dead list`, 1 or more")
	}
	*ix = append(*ix, n)
	return nil
}

// cmdDeadMove is `resc dead requeue` and `resc dead drop`.
func cmdDeadMove(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	f := newDeadFlags(verb, stderr)
	var ix indexes
	f.fs.Var(&ix, "index", "the entry at position `N` of `resc dead list` (repeatable)")
	all := f.fs.Bool("all", false, "every entry")
	match := f.fs.String("match", "", "the entries whose event matches `REGEXP` (Go syntax, unanchored)")
	dryRun := f.fs.Bool("dry-run", false, "print what would be done, write nothing")
	raw := new(bool)
	if verb == "requeue" {
		f.fs.BoolVar(raw, "raw", false, "also requeue entries that are no dead-letter entries, pushing their text as the event")
	}
	path, err := f.parse(args)
	if err != nil {
		return err
	}
	chosen := 0
	for _, given := range []bool{len(ix) > 0, *all, *match != ""} {
		if given {
			chosen++
		}
	}
	if chosen != 1 {
		return f.usage("choose the entries with one of --index, --all or --match")
	}
	var re *regexp.Regexp
	if *match != "" {
		if re, err = regexp.Compile(*match); err != nil {
			return f.usage("--match: %v", err)
		}
	}
	t, err := f.open(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer t.rdb.Close()

	chosenRecs, err := t.in.Select(ctx, t.input, inspect.Selection{Positions: ix, All: *all, Match: re})
	var noEntry *inspect.NoEntryError
	if errors.As(err, &noEntry) {
		return &exitError{code: 1, msg: noEntry.Error() + ": nothing done"}
	}
	if err != nil {
		return deadFailed(t.rdb, err)
	}
	action := map[string]inspect.Action{"requeue": inspect.Requeue, "drop": inspect.Drop}[verb]
	past := map[string]string{"requeue": "requeued", "drop": "dropped"}[verb]
	dead := keyspace.DeadList(t.input)
	counts, err := t.in.Apply(ctx, action, t.input, chosenRecs, inspect.ApplyOptions{Raw: *raw, DryRun: *dryRun},
		func(r deadletter.Record, res inspect.Result) {
			ev := printable(r.Event())
			switch res {
			case inspect.SkippedNotEntry:
				fmt.Fprintf(stdout, "skipped #%d %s: not a dead-letter entry (--raw pushes its text as the event)\n", r.Position, ev)
			case inspect.WouldDo:
				fmt.Fprintf(stdout, "would %s #%d %s\n", verb, r.Position, ev)
			case inspect.Done:
				fmt.Fprintf(stdout, "%s #%d %s\n", past, r.Position, ev)
			case inspect.SkippedGone:
				fmt.Fprintf(stdout, "skipped #%d %s: no longer in %s (requeued or dropped meanwhile)\n", r.Position, ev, dead)
			case inspect.SkippedAsideGone:
				fmt.Fprintf(stdout, "skipped #%d %s: its event, set aside for its size, is no longer in %s field %s (drop the entry)\n",
					r.Position, ev, r.Entry.EventKey, r.Entry.EventField)
			}
		})
	if err != nil {
		fmt.Fprintf(stdout, "%s %d, skipped %d, then stopped\n", past, counts.Done, counts.Skipped)
		return deadFailed(t.rdb, err)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: would %s %d, skip %d; nothing written\n", verb, counts.Done, counts.Skipped)
	} else {
		fmt.Fprintf(stdout, "%s %d, skipped %d\n", past, counts.Done, counts.Skipped)
	}
	return nil
}

// deadFailed is the exit error of a dead-letter command that failed on
// Redis: a key of the wrong type, or Redis not answering.
func deadFailed(rdb *redisconn.Client, err error) error {
	if inspect.Answered(err) || errors.Is(err, deadletter.ErrDeadType) || errors.Is(err, deadletter.ErrInputType) || errors.Is(err, deadletter.ErrAsideType) {
		return &exitError{code: 1, msg: err.Error()}
	}
	return redisFailed(rdb, err)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
