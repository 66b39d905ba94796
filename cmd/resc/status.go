package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/cluster"
	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/telemetry"
)

// Timeouts of the operational commands (status, dead): each Redis call
// fails within them when Redis is unreachable or does not answer, instead
// of the client's defaults and retries.
const (
	opsDialTimeout = 2 * time.Second
	opsIOTimeout   = 3 * time.Second
)

// opsConnect returns a client of the Redis of the operational commands,
// once it answered PING: url (from --redis-url or RESC_REDIS_URL), else
// the configuration's, with short timeouts and no retry, so that an
// unreachable Redis fails the command within seconds.
func opsConnect(ctx context.Context, url string, cfg *config.Config) (*redis.Client, error) {
	if url == "" {
		url = cfg.RedisURL
	}
	if url == "" {
		return nil, &exitError{code: 2, msg: "no Redis URL: set redis.url in the configuration, --redis-url or RESC_REDIS_URL"}
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("bad Redis URL %q: %v", url, err)}
	}
	telemetry.RouteRedisLog(slog.New(slog.DiscardHandler)) // the errors come back to the caller
	opts.DialTimeout = opsDialTimeout
	opts.DialerRetries = 1
	opts.ReadTimeout, opts.WriteTimeout = opsIOTimeout, opsIOTimeout
	opts.MaxRetries = -1
	opts.PoolSize = 2
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, &exitError{code: 1, msg: fmt.Sprintf("Redis at %s did not answer: %v", opts.Addr, err)}
	}
	return rdb, nil
}

// redisAnswered reports whether err is a reply of Redis (WRONGTYPE...)
// rather than a failure to reach it.
func redisAnswered(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// redisFailed is the exit error of an operational command whose Redis
// failed after answering PING.
func redisFailed(rdb *redis.Client, err error) error {
	return &exitError{code: 1, msg: fmt.Sprintf("Redis at %s: %v", rdb.Options().Addr, err)}
}

// statusDoc is the output of `resc status --json` (README: "resc status").
type statusDoc struct {
	Prefix   string          `json:"prefix"`
	Leader   *string         `json:"leader"`
	Replicas []replicaStatus `json:"replicas"`
	Watchers []watcherStatus `json:"watchers"`
	Problems []string        `json:"problems"`
}

type replicaStatus struct {
	ID             string     `json:"id"`
	Alive          bool       `json:"alive"`
	Leader         bool       `json:"leader"`
	HeartbeatAgeMs *int64     `json:"heartbeat_age_ms"`
	Registered     time.Time  `json:"registered"`
	Host           string     `json:"host"`
	PID            int        `json:"pid"`
	Version        string     `json:"version"`
	Started        *time.Time `json:"started"`
	UptimeMs       *int64     `json:"uptime_ms"`
	TakenLists     []listLen  `json:"taken_lists"`
}

type listLen struct {
	List   string `json:"list"`
	Length int64  `json:"length"`
}

type watcherStatus struct {
	InputQueue string      `json:"input_queue"`
	TakenQueue string      `json:"taken_queue"`
	Input      *int64      `json:"input"`
	Taken      int64       `json:"taken"`
	TakenLists []takenList `json:"taken_lists"`
	Dead       *int64      `json:"dead"`
	Delayed    *int64      `json:"delayed"`
}

type takenList struct {
	List    string `json:"list"`
	Replica string `json:"replica"`
	Length  int64  `json:"length"`
	Orphan  bool   `json:"orphan"`
}

// cmdStatus is `resc status [--redis-url URL] [--json] CONFIG`: the
// replicas, the leader and the queues of every watcher, read-only.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: resc status [--redis-url URL] [--json] CONFIG"
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	url := fs.String("redis-url", os.Getenv("RESC_REDIS_URL"), "Redis `URL`, overriding the configuration's")
	asJSON := fs.Bool("json", false, "print one JSON document")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return &exitError{code: 2}
	}
	if len(pos) != 1 {
		return &exitError{code: 2, msg: usage}
	}
	l, err := load(pos[0])
	if err != nil {
		return reportLoad(stderr, err)
	}
	rdb, err := opsConnect(ctx, *url, l.cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	doc, err := readStatus(ctx, rdb, l.cfg, time.Now())
	if err != nil {
		return redisFailed(rdb, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	printStatus(stdout, doc)
	for _, p := range doc.Problems {
		fmt.Fprintln(stderr, "warning:", p)
	}
	return nil
}

// readStatus reads the status of the cluster and the queues of cfg; now
// gives the uptimes. A key of the wrong type is a problem of the document;
// any other error (Redis did not answer) is returned.
func readStatus(ctx context.Context, rdb *redis.Client, cfg *config.Config, now time.Time) (*statusDoc, error) {
	doc := &statusDoc{Prefix: cfg.KeyPrefix, Replicas: []replicaStatus{}, Watchers: []watcherStatus{}, Problems: []string{}}
	problem := func(what string, err error) error {
		if !redisAnswered(err) {
			return err
		}
		doc.Problems = append(doc.Problems, fmt.Sprintf("%s: %v", what, err))
		return nil
	}
	leader, err := cluster.Leader(ctx, rdb, cfg.KeyPrefix)
	if err != nil {
		if err := problem("leader lock", err); err != nil {
			return nil, err
		}
	}
	if leader != "" {
		doc.Leader = &leader
	}
	replicas, err := cluster.Replicas(ctx, rdb, cfg.KeyPrefix)
	if err != nil {
		if err := problem("replica registry", err); err != nil {
			return nil, err
		}
	}
	owners, err := cluster.Owners(ctx, rdb, cfg.KeyPrefix)
	if err != nil {
		if err := problem("taken list owners", err); err != nil {
			return nil, err
		}
	}
	owned := map[string][]string{} // replica -> its taken lists
	for list, id := range owners {
		owned[id] = append(owned[id], list)
	}
	for _, r := range replicas {
		s := replicaStatus{
			ID: r.ID, Alive: r.Alive, Leader: leader != "" && r.ID == leader,
			Registered: r.Registered.UTC(), Host: r.Info.Host, PID: r.Info.PID, Version: r.Info.Version,
			TakenLists: []listLen{},
		}
		if r.Alive && r.TTL >= 0 && r.Info.DeadAfter > 0 { // as cluster computes HeartbeatAge
			s.HeartbeatAgeMs = ptr(r.HeartbeatAge.Milliseconds())
		}
		if !r.Info.Started.IsZero() {
			s.Started = ptr(r.Info.Started.UTC())
			if r.Alive {
				s.UptimeMs = ptr(now.Sub(r.Info.Started).Milliseconds())
			}
		}
		if r.InfoErr != nil {
			doc.Problems = append(doc.Problems, r.InfoErr.Error())
		}
		lists := owned[r.ID]
		slices.Sort(lists)
		for _, list := range lists {
			s.TakenLists = append(s.TakenLists, listLen{List: list})
		}
		doc.Replicas = append(doc.Replicas, s)
	}
	if err := readQueues(ctx, rdb, cfg, doc, problem); err != nil {
		return nil, err
	}
	return doc, nil
}

// readQueues fills the watchers of doc, and the lengths of the replicas'
// taken lists.
func readQueues(ctx context.Context, rdb *redis.Client, cfg *config.Config, doc *statusDoc, problem func(string, error) error) error {
	// Keys that a taken-list pattern may match but that are no taken
	// lists, as the leader excludes them.
	excluded := map[string]bool{}
	for _, w := range cfg.Watchers {
		excluded[w.InputQueue], excluded[w.TakenQueue], excluded[keyspace.DeadList(w.InputQueue)] = true, true, true
	}
	ids := map[string]bool{}
	for _, w := range cfg.Watchers {
		ws := watcherStatus{InputQueue: w.InputQueue, TakenQueue: w.TakenQueue, TakenLists: []takenList{}}
		var cursor uint64
		for {
			keys, next, err := rdb.ScanType(ctx, cursor, keyspace.TakenListPattern(w.TakenQueue), 1000, "list").Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				if id, ok := keyspace.TakenListReplica(w.TakenQueue, k); ok && !excluded[k] {
					ws.TakenLists = append(ws.TakenLists, takenList{List: k, Replica: id})
					ids[id] = true
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		slices.SortFunc(ws.TakenLists, func(a, b takenList) int { return strings.Compare(a.List, b.List) })
		doc.Watchers = append(doc.Watchers, ws)
	}

	// Every length in one pipeline, each key once.
	pipe := rdb.Pipeline()
	type lenCmd struct {
		key, what string
		cmd       *redis.IntCmd
	}
	var cmds []lenCmd
	seen := map[string]bool{}
	count := func(key, what string, zset bool) {
		if seen[key] {
			return
		}
		seen[key] = true
		c := lenCmd{key: key, what: what + " " + strconv.Quote(key)}
		if zset {
			c.cmd = pipe.ZCard(ctx, key)
		} else {
			c.cmd = pipe.LLen(ctx, key)
		}
		cmds = append(cmds, c)
	}
	for _, ws := range doc.Watchers {
		count(ws.InputQueue, "input queue", false)
		count(keyspace.DeadList(ws.InputQueue), "dead-letter list", false)
		count(keyspace.DelaySchedule(cfg.KeyPrefix, ws.InputQueue), "delay schedule", true)
		for _, tl := range ws.TakenLists {
			count(tl.List, "taken list", false)
		}
	}
	for _, r := range doc.Replicas {
		for _, tl := range r.TakenLists {
			count(tl.List, "taken list", false)
		}
	}
	_, _ = pipe.Exec(ctx) // errors are read command by command
	lengths := map[string]*int64{}
	for _, c := range cmds {
		n, err := c.cmd.Result()
		if err != nil {
			if err := problem(c.what, err); err != nil {
				return err
			}
			continue
		}
		lengths[c.key] = ptr(n)
	}
	lenOf := func(key string) int64 {
		if n := lengths[key]; n != nil {
			return *n
		}
		return 0 // another type: a problem of the document
	}

	// The leader's own test: a taken list is an orphan when its replica's
	// heartbeat key is gone, or never was.
	idList := slices.Sorted(maps.Keys(ids))
	alive, err := cluster.NewLiveness(rdb, cfg.KeyPrefix).Alive(ctx, idList)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for i, id := range idList {
		live[id] = alive[i]
	}
	for i := range doc.Watchers {
		ws := &doc.Watchers[i]
		ws.Input = lengths[ws.InputQueue]
		ws.Dead = lengths[keyspace.DeadList(ws.InputQueue)]
		ws.Delayed = lengths[keyspace.DelaySchedule(cfg.KeyPrefix, ws.InputQueue)]
		for j := range ws.TakenLists {
			tl := &ws.TakenLists[j]
			tl.Length = lenOf(tl.List)
			tl.Orphan = !live[tl.Replica]
			ws.Taken += tl.Length
		}
	}
	for i := range doc.Replicas {
		for j := range doc.Replicas[i].TakenLists {
			tl := &doc.Replicas[i].TakenLists[j]
			tl.Length = lenOf(tl.List)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// printStatus prints doc as tables.
func printStatus(w io.Writer, doc *statusDoc) {
	leader := "none"
	if doc.Leader != nil {
		leader = printable(*doc.Leader)
	}
	fmt.Fprintf(w, "leader: %s\n\n", leader)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(doc.Replicas) == 0 {
		fmt.Fprintln(w, "no replica registered")
	} else {
		fmt.Fprintln(tw, "REPLICA\tSTATE\tHEARTBEAT AGE\tHOST\tPID\tVERSION\tSTARTED\tUPTIME\tTAKEN LISTS")
		for _, r := range doc.Replicas {
			state := "dead"
			if r.Alive {
				state = "alive"
			}
			if r.Leader {
				state += ",leader"
			}
			pid, started, lists := "-", "-", "-"
			if r.PID != 0 {
				pid = strconv.Itoa(r.PID)
			}
			if r.Started != nil {
				started = r.Started.Format(time.RFC3339)
			}
			if len(r.TakenLists) > 0 {
				ls := make([]string, len(r.TakenLists))
				for i, l := range r.TakenLists {
					ls[i] = fmt.Sprintf("%s(%d)", printable(l.List), l.Length)
				}
				lists = strings.Join(ls, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(r.ID), state,
				msCell(r.HeartbeatAgeMs, time.Millisecond), cell(r.Host), pid, cell(r.Version),
				started, msCell(r.UptimeMs, time.Second), lists)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	fmt.Fprintln(tw, "INPUT QUEUE\tINPUT\tTAKEN\tDEAD\tDELAYED")
	var lists []takenList
	for _, ws := range doc.Watchers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", printable(ws.InputQueue), countCell(ws.Input), ws.Taken, countCell(ws.Dead), countCell(ws.Delayed))
		lists = append(lists, ws.TakenLists...)
	}
	tw.Flush()

	fmt.Fprintln(w)
	if len(lists) == 0 {
		fmt.Fprintln(w, "no taken list holds events")
		return
	}
	fmt.Fprintln(tw, "TAKEN LIST\tREPLICA\tLENGTH\tSTATE")
	for _, tl := range lists {
		state := "held"
		if tl.Orphan {
			state = "orphan"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", printable(tl.List), printable(tl.Replica), tl.Length, state)
	}
	tw.Flush()
	if slices.ContainsFunc(lists, func(tl takenList) bool { return tl.Orphan }) {
		fmt.Fprintln(w, "\norphan: its replica is not alive; the leader moves its events back to the input queue")
	}
}

// msCell is a duration in ms for a table, rounded to round; "-" for nil.
func msCell(ms *int64, round time.Duration) string {
	if ms == nil {
		return "-"
	}
	return (time.Duration(*ms) * time.Millisecond).Round(round).String()
}

// countCell is a length for a table; "-" for nil (a key of another type).
func countCell(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

// cell is s for a table: "-" when empty, else printable.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

// printable returns s as it is when it prints on one line as it is, else
// quoted with Go escapes (control characters, invalid UTF-8, nothing).
func printable(s string) string {
	if s == "" || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}
