package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/inspect"
	"github.com/resc-go/resc/internal/redisconn"
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
func opsConnect(ctx context.Context, url string, cfg *config.Config) (*redisconn.Client, error) {
	if url == "" {
		url = cfg.RedisURL
	}
	telemetry.RouteRedisLog(slog.New(slog.DiscardHandler)) // the errors come back to the caller
	rdb, err := connect(ctx, redisconn.Options{URL: url, Settings: cfg.Redis,
		DialTimeout: opsDialTimeout, DialerRetries: 1, IOTimeout: opsIOTimeout, MaxRetries: -1, PoolSize: 2})
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, &exitError{code: 1, msg: fmt.Sprintf("Redis at %s did not answer: %v", rdb.Addr, err)}
	}
	return rdb, nil
}

// redisFailed is the exit error of an operational command whose Redis
// failed after answering PING.
func redisFailed(rdb *redisconn.Client, err error) error {
	return &exitError{code: 1, msg: fmt.Sprintf("Redis at %s: %v", rdb.Addr, err)}
}

// cmdStatus is `resc status [--redis-url URL] [--json] CONFIG`: the
// replicas, the leader and the queues of every watcher, read-only.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: resc status [--redis-url URL] [--json] CONFIG"
	fs := newFlags("status", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	url := fs.String("redis-url", os.Getenv("RESC_REDIS_URL"), "Redis `URL`, overriding the configuration's")
	asJSON := fs.Bool("json", false, "print one JSON document")
	pos, err := positional(fs, args, 1, false, usage)
	if err != nil {
		return err
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
	doc, err := inspect.New(rdb.UniversalClient, l.cfg, inspect.Options{}).Status(ctx)
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

// printStatus prints doc as tables.
func printStatus(w io.Writer, doc *inspect.Status) {
	leader := "none"
	if doc.Leader != nil {
		leader = printable(*doc.Leader)
	}
	fmt.Fprintf(w, "leader: %s\n\n", leader)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	printReplicas(w, tw, doc.Replicas)
	if doc.DeadRetentionMs != nil {
		fmt.Fprintf(w, "dead replicas and workers leave the registry %s after the leader finds them dead, once their taken lists are empty (cluster.dead_retention_ms)\n",
			msCell(doc.DeadRetentionMs, time.Second))
	} else {
		fmt.Fprintln(w, "dead replicas and workers stay in the registry (cluster.dead_retention_ms is 0)")
	}

	fmt.Fprintln(w)
	fmt.Fprintln(tw, "INPUT QUEUE\tINPUT\tTAKEN\tDEAD\tDELAYED")
	var lists []inspect.TakenList
	for _, ws := range doc.Watchers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", printable(ws.InputQueue), countCell(ws.Input), ws.Taken, countCell(ws.Dead), countCell(ws.Delayed))
		lists = append(lists, ws.TakenLists...)
	}
	tw.Flush()
	if len(doc.TaskQueues) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "TASK QUEUE (WORKERS)\tPENDING\tTAKEN")
		for _, tq := range doc.TaskQueues {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", printable(tq.Queue), countCell(tq.Pending), tq.Taken)
			lists = append(lists, tq.TakenLists...)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	if len(lists) == 0 {
		fmt.Fprintln(w, "no taken list holds events")
		return
	}
	fmt.Fprintln(tw, "TAKEN LIST\tREPLICA OR WORKER\tLENGTH\tSTATE")
	for _, tl := range lists {
		state := "held"
		if tl.Orphan {
			state = "orphan"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", printable(tl.List), printable(tl.Replica), tl.Length, state)
	}
	tw.Flush()
	if slices.ContainsFunc(lists, func(tl inspect.TakenList) bool { return tl.Orphan }) {
		fmt.Fprintln(w, "\norphan: its replica or worker is not alive; the leader moves its events back to their queue")
	}
}

// printReplicas prints the table of the registered replicas and workers.
func printReplicas(w io.Writer, tw *tabwriter.Writer, rs []inspect.Replica) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no replica registered")
	} else {
		fmt.Fprintln(tw, "REPLICA\tSTATE\tHEARTBEAT AGE\tHOST\tPID\tVERSION\tSTARTED\tUPTIME\tTAKEN LISTS")
		for _, r := range rs {
			state := "dead"
			if r.Alive {
				state = "alive"
			}
			if r.RemovalInMs != nil {
				state += ",removed-in-" + msCell(r.RemovalInMs, time.Second)
			}
			if r.Leader {
				state += ",leader"
			}
			if r.Kind != "" {
				state += "," + printable(r.Kind)
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
