package inspect

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/takenlist"
	"github.com/resc-go/resc/membership"
)

// Status is the state of a deployment: its replicas, its leader and the
// queues of its watchers. As JSON it is the output of `resc status --json`
// (README: "resc status"): the field names are part of the CLI.
type Status struct {
	// Prefix is the key prefix of the configuration.
	Prefix string `json:"prefix"`
	// Leader is the id of the replica holding the leader lock; nil when
	// none does.
	Leader *string `json:"leader"`
	// Replicas are the registered replicas (live, and dead ones not yet
	// cleaned up), by registration time.
	Replicas []Replica `json:"replicas"`
	// Watchers are the configuration's watchers, in order.
	Watchers []Watcher `json:"watchers"`
	// TaskQueues are the task queues that workers of the Go SDK announced
	// (keyspace.WorkerQueues) and no watcher reads, by name, with the
	// workers' taken lists "<queue>/taken/<worker-id>".
	TaskQueues []TaskQueue `json:"task_queues"`
	// DeadRetentionMs is how long a dead replica or worker stays in the
	// registry after the leader found it dead (cluster.dead_retention_ms);
	// nil when dead entries are kept.
	DeadRetentionMs *int64 `json:"dead_retention_ms"`
	// Problems are keys of the wrong type and infos that do not decode;
	// the rest of the status is still valid. A read that failed for any
	// other reason (Redis down, a cluster down) fails Status instead.
	Problems []string `json:"problems"`
}

// TaskQueue is a task queue of SDK workers.
type TaskQueue struct {
	Queue string `json:"queue"`
	// Pending is the length of the queue; nil when its key has another
	// type (a problem of the Status).
	Pending *int64 `json:"pending"`
	// Taken is the sum of the lengths of TakenLists.
	Taken      int64       `json:"taken"`
	TakenLists []TakenList `json:"taken_lists"`
}

// Replica is a registered replica.
type Replica struct {
	ID     string `json:"id"`
	Alive  bool   `json:"alive"`
	Leader bool   `json:"leader"`
	// HeartbeatAgeMs is how long ago its heartbeat was renewed, as Redis
	// sees it; nil when unknown (dead, or no info).
	HeartbeatAgeMs *int64    `json:"heartbeat_age_ms"`
	Registered     time.Time `json:"registered"`
	Host           string    `json:"host"`
	PID            int       `json:"pid"`
	Version        string    `json:"version"`
	// Kind is "worker" for a worker of the Go SDK (package worker),
	// absent for a replica.
	Kind string `json:"kind,omitempty"`
	// Started is when the process started; UptimeMs its age, for a live
	// replica. Nil when unknown.
	Started  *time.Time `json:"started"`
	UptimeMs *int64     `json:"uptime_ms"`
	// TakenLists are the taken lists it registered as its own.
	TakenLists []ListLength `json:"taken_lists"`
	// DeadSince is when the leader first found it dead, by the leader's
	// clock; RemovalInMs how long until the leader removes it from the
	// registry (0: at its next pass, once its taken lists are empty).
	// Both nil while alive, before the leader has seen it dead, or when
	// dead entries are kept.
	DeadSince   *time.Time `json:"dead_since"`
	RemovalInMs *int64     `json:"removal_in_ms"`
}

// ListLength is a list and its length.
type ListLength struct {
	List   string `json:"list"`
	Length int64  `json:"length"`
}

// Watcher is the state of a watcher's queues. A length is nil when its key
// has another type (a problem of the Status).
type Watcher struct {
	InputQueue string `json:"input_queue"`
	TakenQueue string `json:"taken_queue"`
	Input      *int64 `json:"input"`
	// Taken is the sum of the lengths of TakenLists.
	Taken      int64       `json:"taken"`
	TakenLists []TakenList `json:"taken_lists"`
	Dead       *int64      `json:"dead"`
	Delayed    *int64      `json:"delayed"`
}

// TakenList is a taken list of a watcher or of a task queue.
type TakenList struct {
	List string `json:"list"`
	// Replica is the id of its replica, or of its worker.
	Replica string `json:"replica"`
	Length  int64  `json:"length"`
	// Orphan is set when its replica is not alive: the leader moves its
	// events back to the input queue.
	Orphan bool `json:"orphan"`
}

// Status reads the status of the deployment. A key of the wrong type is a
// problem of the Status; any other error (Redis did not answer, or
// answered with an error: CLUSTERDOWN, LOADING, NOPERM...) is returned:
// a read that failed is never shown as an empty result.
func (in *Inspector) Status(ctx context.Context) (*Status, error) {
	prefix := in.cfg.KeyPrefix
	st := &Status{Prefix: prefix, Replicas: []Replica{}, Watchers: []Watcher{}, TaskQueues: []TaskQueue{}, Problems: []string{}}
	if r := in.cfg.Cluster.DeadRetention; r > 0 {
		st.DeadRetentionMs = ptr(r.Milliseconds())
	}
	problem := func(what string, err error) error {
		if !script.IsWrongTypeReply(err) && !errors.Is(err, script.ErrWrongType) {
			return fmt.Errorf("%s: %w", what, err)
		}
		st.Problems = append(st.Problems, fmt.Sprintf("%s: %v", what, err))
		return nil
	}
	leader, err := membership.Leader(ctx, in.rdb, prefix)
	if err != nil {
		if err := problem("leader lock", err); err != nil {
			return nil, err
		}
	}
	if leader != "" {
		st.Leader = &leader
	}
	if err := in.readReplicas(ctx, st, problem); err != nil {
		return nil, err
	}
	if err := in.readWatchers(ctx, st, problem); err != nil {
		return nil, err
	}
	if err := in.readLengths(ctx, st, problem); err != nil {
		return nil, err
	}
	return st, nil
}

// readReplicas fills the replicas of st, their taken lists without their
// lengths.
func (in *Inspector) readReplicas(ctx context.Context, st *Status, problem func(string, error) error) error {
	prefix := in.cfg.KeyPrefix
	replicas, err := membership.Replicas(ctx, in.rdb, prefix)
	if err != nil {
		if err := problem("replica registry", err); err != nil {
			return err
		}
	}
	owners, err := membership.Owners(ctx, in.rdb, prefix)
	if err != nil {
		if err := problem("taken list owners", err); err != nil {
			return err
		}
	}
	owned := map[string][]string{} // replica -> its taken lists
	for list, id := range owners {
		owned[id] = append(owned[id], list)
	}
	now := in.now()
	for _, r := range replicas {
		s := Replica{
			ID: r.ID, Alive: r.Alive, Leader: st.Leader != nil && r.ID == *st.Leader,
			Registered: r.Registered.UTC(), Host: r.Info.Host, PID: r.Info.PID, Version: r.Info.Version, Kind: r.Info.Kind,
			TakenLists: []ListLength{},
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
			st.Problems = append(st.Problems, r.InfoErr.Error())
		}
		if retention := in.cfg.Cluster.DeadRetention; !r.Alive && !r.DeadSince.IsZero() && retention > 0 {
			s.DeadSince = ptr(r.DeadSince.UTC())
			s.RemovalInMs = ptr(max(retention-now.Sub(r.DeadSince), 0).Milliseconds())
		}
		lists := owned[r.ID]
		slices.Sort(lists)
		for _, list := range lists {
			s.TakenLists = append(s.TakenLists, ListLength{List: list})
		}
		st.Replicas = append(st.Replicas, s)
	}
	return nil
}

// readWatchers fills the watchers and the task queues of st with their
// taken lists, without lengths.
func (in *Inspector) readWatchers(ctx context.Context, st *Status, problem func(string, error) error) error {
	key := keyspace.WorkerQueues(keyspace.SharedPrefix(in.rdb, in.cfg.KeyPrefix))
	announced, err := in.rdb.HGetAll(ctx, key).Result() // HGETALL, as the leader: the documented ACL allows it
	if err != nil {
		if err := problem("worker queues "+strconv.Quote(key), err); err != nil {
			return err
		}
	}
	finder, qs := in.finder, queues(in.cfg)
	var tasks []string
	for q := range announced {
		// A queue a watcher reads is shown with its watcher, as the
		// leader's recovery treats it.
		if q != "" && !slices.ContainsFunc(in.cfg.Watchers, func(w config.Watcher) bool { return w.InputQueue == q }) {
			tasks = append(tasks, q)
			qs = append(qs, takenlist.Queues{InputQueue: q, TakenQueue: keyspace.WorkerTakenQueue(q)})
		}
	}
	slices.Sort(tasks)
	if len(tasks) > 0 {
		finder = takenlist.New(qs) // the worker queues and the watchers' exclude each other
	}
	find := func(takenQueue string) ([]TakenList, error) {
		lists, err := finder.Find(ctx, in.rdb, takenQueue)
		if err != nil {
			return nil, err
		}
		out := []TakenList{}
		for _, l := range lists {
			out = append(out, TakenList{List: l.Key, Replica: l.Replica})
		}
		return out, nil
	}
	for _, w := range in.cfg.Watchers {
		lists, err := find(w.TakenQueue)
		if err != nil {
			return err
		}
		st.Watchers = append(st.Watchers, Watcher{InputQueue: w.InputQueue, TakenQueue: w.TakenQueue, TakenLists: lists})
	}
	for _, q := range tasks {
		lists, err := find(keyspace.WorkerTakenQueue(q))
		if err != nil {
			return err
		}
		st.TaskQueues = append(st.TaskQueues, TaskQueue{Queue: q, TakenLists: lists})
	}
	return nil
}

// readLengths reads every length of st in one pipeline, each key once, and
// which taken lists are orphans.
func (in *Inspector) readLengths(ctx context.Context, st *Status, problem func(string, error) error) error {
	prefix := in.cfg.KeyPrefix
	lengths, err := in.lengths(ctx, st, problem)
	if err != nil {
		return err
	}
	lenOf := func(key string) int64 {
		if n := lengths[key]; n != nil {
			return *n
		}
		return 0 // another type: a problem of the status
	}
	live, err := in.live(ctx, st)
	if err != nil {
		return fmt.Errorf("reading which replicas are alive: %w", err)
	}
	for i := range st.Watchers {
		ws := &st.Watchers[i]
		ws.Input = lengths[ws.InputQueue]
		ws.Dead = lengths[keyspace.DeadList(ws.InputQueue)]
		ws.Delayed = lengths[keyspace.DelaySchedule(prefix, ws.InputQueue)]
		for j := range ws.TakenLists {
			tl := &ws.TakenLists[j]
			tl.Length = lenOf(tl.List)
			tl.Orphan = !live[tl.Replica]
			ws.Taken += tl.Length
		}
	}
	for i := range st.TaskQueues {
		tq := &st.TaskQueues[i]
		tq.Pending = lengths[tq.Queue]
		for j := range tq.TakenLists {
			tl := &tq.TakenLists[j]
			tl.Length = lenOf(tl.List)
			tl.Orphan = !live[tl.Replica]
			tq.Taken += tl.Length
		}
	}
	for i := range st.Replicas {
		for j := range st.Replicas[i].TakenLists {
			tl := &st.Replicas[i].TakenLists[j]
			tl.Length = lenOf(tl.List)
		}
	}
	return nil
}

// lengths reads the length of every list and schedule of st in one
// pipeline, each key once; a key that cannot be read (another type) is
// left out, reported to problem.
func (in *Inspector) lengths(ctx context.Context, st *Status, problem func(string, error) error) (map[string]*int64, error) {
	prefix := in.cfg.KeyPrefix
	pipe := in.rdb.Pipeline()
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
	for _, ws := range st.Watchers {
		count(ws.InputQueue, "input queue", false)
		count(keyspace.DeadList(ws.InputQueue), "dead-letter list", false)
		count(keyspace.DelaySchedule(prefix, ws.InputQueue), "delay schedule", true)
		for _, tl := range ws.TakenLists {
			count(tl.List, "taken list", false)
		}
	}
	for _, tq := range st.TaskQueues {
		count(tq.Queue, "task queue", false)
		for _, tl := range tq.TakenLists {
			count(tl.List, "taken list", false)
		}
	}
	for _, r := range st.Replicas {
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
				return nil, err
			}
			continue
		}
		lengths[c.key] = ptr(n)
	}
	return lengths, nil
}

// live tells, for each replica or worker owning a taken list of st,
// whether it is alive: the leader's own test, a taken list is an orphan
// when its replica's heartbeat key is gone, or never was.
func (in *Inspector) live(ctx context.Context, st *Status) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, ws := range st.Watchers {
		for _, tl := range ws.TakenLists {
			ids[tl.Replica] = true
		}
	}
	for _, tq := range st.TaskQueues {
		for _, tl := range tq.TakenLists {
			ids[tl.Replica] = true
		}
	}
	idList := slices.Sorted(maps.Keys(ids))
	alive, err := membership.NewLiveness(in.rdb, in.cfg.KeyPrefix).Alive(ctx, idList)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for i, id := range idList {
		live[id] = alive[i]
	}
	return live, nil
}

func ptr[T any](v T) *T { return &v }
