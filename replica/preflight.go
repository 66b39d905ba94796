package replica

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed preflight.lua
	preflightSrc    string
	preflightScript = script.New(preflightSrc)
)

// ErrNoPermission is wrapped by Run's error when the ACL user may not run
// a command, or use a key or the channel, that the replica needs: no
// retry mends that (cmd/resc exits 2).
var ErrNoPermission = errors.New("replica: the Redis user lacks a permission")

// replicaCommands are the commands a replica runs, its scripts' included
// (membership, watcher, recovery, the redsync election), all in the
// minimal ACL rule of docs/redis.md, each with whole arguments, "k"
// standing for a key: redis.acl_check_cmd reads a command's arguments to
// find its keys, and one without them is refused at random (SET) or
// brings a Redis 7.0 server down (EVAL).
var replicaCommands = [][]string{
	{"EVAL", "return 1", "0"}, {"EVALSHA", "0000000000000000000000000000000000000000", "0"}, {"SCAN", "0"},
	{"GET", "k"}, {"SET", "k", "x"}, {"DEL", "k"}, {"EXISTS", "k"}, {"TYPE", "k"}, {"PEXPIRE", "k", "1"}, {"PTTL", "k"},
	{"LPUSH", "k", "x"}, {"RPUSH", "k", "x"}, {"LPOP", "k"}, {"RPOP", "k"}, {"LMOVE", "k", "k", "RIGHT", "LEFT"},
	{"BLMOVE", "k", "k", "RIGHT", "LEFT", "1"}, {"LREM", "k", "0", "x"}, {"LINDEX", "k", "0"}, {"LLEN", "k"}, {"LSET", "k", "0", "x"},
	{"HGET", "k", "f"}, {"HSET", "k", "f", "x"}, {"HSETNX", "k", "f", "x"}, {"HDEL", "k", "f"}, {"HGETALL", "k"},
	{"ZADD", "k", "1", "x"}, {"ZREM", "k", "x"}, {"ZCARD", "k"}, {"ZRANGE", "k", "0", "-1"}, {"ZREVRANGEBYSCORE", "k", "+inf", "-inf"},
}

// permCheck is one question of preflight: may the user run cmd (args) on
// key ("" for none)?
type permCheck struct {
	cmd, key string
	args     []string
}

// CheckPermissions is the check of the start (preflight) made again: it
// names what the ACL user may not use now, for a refusal Redis words
// without naming the command (inside a script that is not resc-go's own,
// such as the election's). nil when nothing is refused or the server
// cannot tell (Redis 6).
func (r *Replica) CheckPermissions(ctx context.Context) error {
	return r.preflight(ctx, script.Dialect{}) // Redis 7, the only one that can tell, runs #!lua
}

// preflight asks Redis whether the ACL user may run every command the
// replica runs, on the keys it knows before the first event (the shared
// keys, each watcher's input queue, taken list, dead-letter list, delay
// schedule and fetch attempts), and publish to the listener channel. It
// returns an error wrapping ErrNoPermission naming every refusal. A server
// without redis.acl_check_cmd (Redis 6, the embedded server) is not asked;
// an error of Redis itself (it is down) is left to the steps that follow,
// which wait it out.
func (r *Replica) preflight(ctx context.Context, dialect script.Dialect) error {
	cfg := r.o.Config
	shared := keyspace.SharedPrefix(r.o.Redis, r.cs.Prefix)
	// Each command is asked about on two keys of different patterns, and
	// each key with two commands, so that a refused command is told from a
	// refused key (noPermission).
	onKeys := []string{keyspace.Replica(shared, r.o.ID), keyspace.Leader(shared)}
	keys := []string{keyspace.ReplicaInfo(shared, r.o.ID), keyspace.Replicas(shared), keyspace.Owners(shared)}
	for i, wc := range cfg.Watchers {
		taken := keyspace.TakenList(wc.TakenQueue, r.o.ID)
		if i == 0 {
			onKeys[1] = taken
		}
		keys = append(keys, wc.InputQueue, taken, keyspace.DeadList(wc.InputQueue),
			keyspace.DelaySchedule(r.cs.Prefix, wc.InputQueue), keyspace.FetchAttempts(r.cs.Prefix, wc.InputQueue))
	}
	var checks []permCheck
	for _, c := range replicaCommands {
		if !slices.Contains(c, "k") {
			checks = append(checks, permCheck{cmd: c[0], args: c})
			continue
		}
		for _, k := range onKeys {
			args := slices.Clone(c)
			for i := range args {
				if args[i] == "k" {
					args[i] = k
				}
			}
			checks = append(checks, permCheck{cmd: c[0], key: k, args: args})
		}
	}
	for _, k := range keys {
		checks = append(checks, permCheck{cmd: "LPUSH", key: k, args: []string{"LPUSH", k, "x"}},
			permCheck{cmd: "HSET", key: k, args: []string{"HSET", k, "f", "x"}})
	}
	if cfg.ListenerChannel != "" {
		checks = append(checks, permCheck{cmd: "PUBLISH", key: "channel " + cfg.ListenerChannel, args: []string{"PUBLISH", cfg.ListenerChannel, "x"}})
	}
	if cfg.ListenerStream != "" {
		checks = append(checks, permCheck{cmd: "XADD", key: cfg.ListenerStream, args: []string{"XADD", cfg.ListenerStream, "*", "f", "x"}})
	}
	args := make([]any, 0, 4*len(checks))
	for _, c := range checks {
		args = append(args, len(c.args))
		for _, a := range c.args {
			args = append(args, a)
		}
	}
	reply, err := preflightScript.Run(ctx, dialect, r.o.Redis, nil, args...).Int64Slice()
	var re redis.Error
	switch {
	case err != nil && errors.As(err, &re) && script.IsNoPermission(err):
		msg, _ := script.NoPermission(err, "evalsha")
		return fmt.Errorf("%w: %s", ErrNoPermission, msg)
	case err != nil:
		r.log.Warn("could not check the ACL permissions at start", "err", err)
		return nil
	case script.Code(reply) != 1:
		r.log.Warn("could not check the ACL permissions at start", "err", fmt.Sprintf("preflight.lua: unexpected reply %v", reply))
		return nil
	}
	return noPermission(checks, reply[1:])
}

// noPermission words the refusals of preflight.lua (the indexes into
// checks it replied): nil when there are none. A command refused on every
// key it was asked about is named as a command, a key refused with every
// command it was asked about (but those) as a key, and the rest as a
// command on a key.
func noPermission(checks []permCheck, reply []int64) error {
	refused := make([]bool, len(checks))
	for _, i := range reply {
		if i >= 1 && int(i) <= len(checks) {
			refused[i-1] = true
		}
	}
	// all: at least two checks kept, and all refused.
	all := func(keep func(c permCheck) bool) bool {
		seen := 0
		for i, c := range checks {
			if keep(c) {
				seen++
				if !refused[i] {
					return false
				}
			}
		}
		return seen >= 2
	}
	var cmds, keys, pairs []string
	cmdOut := map[string]bool{}
	keyOut := map[string]bool{}
	for i, c := range checks {
		if !refused[i] || cmdOut[c.cmd] || keyOut[c.key] {
			continue
		}
		switch {
		case all(func(o permCheck) bool { return o.cmd == c.cmd }):
			cmdOut[c.cmd] = true
			cmds = append(cmds, c.cmd)
		case c.key != "" && all(func(o permCheck) bool { return o.key == c.key && !cmdOut[o.cmd] }):
			keyOut[c.key] = true
			keys = append(keys, c.key)
		default:
			pairs = append(pairs, c.cmd+" on "+c.key+" (add +"+strings.ToLower(c.cmd)+", or a pattern matching it)")
		}
	}
	var words []string
	if len(cmds) > 0 {
		hints := make([]string, len(cmds))
		for i, c := range cmds {
			hints[i] = "+" + strings.ToLower(c)
		}
		words = append(words, "may not run "+strings.Join(cmds, ", ")+": add "+strings.Join(hints, " ")+" to its ACL rule")
	}
	if len(keys) > 0 {
		words = append(words, "may not access the key "+strings.Join(keys, ", ")+": add a pattern matching it (~... for a key, &... for a channel) to its ACL rule")
	}
	if len(pairs) > 0 {
		words = append(words, "may not run "+strings.Join(pairs, ", "))
	}
	if len(words) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the Redis user %s", ErrNoPermission, strings.Join(words, "; it "))
}
