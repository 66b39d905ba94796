// Package script runs resc-go's Lua scripts on Redis servers with or without
// support for the Redis 7 "#!lua" shebang.
//
// Every script starts with "#!lua" so that Redis 7 treats it as a write
// script declared up front: under maxmemory an out-of-memory server refuses
// the whole script before it runs instead of failing half way. Servers that
// do not know the shebang (Redis 6, the embedded miniredis of `make run`)
// reject such a script as a syntax error; Detect finds that out once and the
// scripts then run without the first line, losing only that protection.
//
// # Reply convention
//
// Every script of the product replies an array whose first element is a
// code, the same codes for all (docs/workers.md, "Reply convention"):
//
//	1        done; what follows is the script's data
//	0        fenced: what the call acts for is no longer its own (the fence
//	         or registration holds another token, the entry is no longer
//	         in its list); nothing was written
//	2 .. k   a key has the wrong type, the keys in the order the script's
//	         header lists them; nothing was written
//	last     bad argument (a bug of the caller); nothing was written
//
// A script checks every key's type (the TypeCheck prelude) and every
// argument before its first write: Redis does not roll a script back. Its
// Go wrapper maps the codes to its package's sentinel errors (Code reads
// the code). Error replies are left to Redis' own refusals (NOPERM,
// OOM...), which commit.lua's permission check imitates, and to scripts
// whose reply says more per element (watcher/commit.lua: one record per
// event, each with its own code, after the call's).
package script

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

const shebang = "#!lua"

// Script is one Lua script in both forms.
type Script struct {
	full   *redis.Script
	legacy *redis.Script
}

// Prelude is Lua source that New inserts after a script's "#!lua" line:
// helpers several scripts share, so that each is written once. The script
// Redis runs is still one piece, and its line numbers in error messages
// count the prelude's lines too.
type Prelude string

// TypeCheck defines type_of(key) and is(key, want) (typecheck.lua): how a
// script checks the type of a key before it writes.
//
//go:embed typecheck.lua
var TypeCheck Prelude

// ReplayStamp defines unstamp(entry) and stamp(n, event)
// (replaystamp.lua): the crash replay count an entry carries, as
// keyspace.StampReplays and keyspace.Unstamp write and read it.
//
//go:embed replaystamp.lua
var ReplayStamp Prelude

// Delay defines delay_ms(first, longest, k) (delay.lua): the delay of a
// retry or replay after k doublings, capped, computed in one place for
// the leader's replays and the workers' retries.
//
//go:embed delay.lua
var Delay Prelude

// Move defines move(src, dst, want, budget, out, each) (move.lua): how a
// consumer takes entries into its private list within a byte budget, the
// one implementation of the watcher's take and the worker SDK's.
//
//go:embed move.lua
var Move Prelude

// New returns the script of src, which must start with "#!lua", with the
// preludes inserted after that line. It panics otherwise: scripts are
// package-level constants embedded at build time.
func New(src string, preludes ...Prelude) *Script {
	if !strings.HasPrefix(src, shebang) {
		panic("script: source does not start with " + shebang)
	}
	first, body, _ := strings.Cut(src, "\n")
	var b strings.Builder
	for _, p := range preludes {
		b.WriteString(string(p))
	}
	body = b.String() + body
	sc := &Script{full: redis.NewScript(first + "\n" + body), legacy: redis.NewScript(body)}
	register(sc.full, first+"\n"+body)
	register(sc.legacy, body)
	return sc
}

// Dialect says which form of the scripts a server runs.
type Dialect struct {
	// Legacy is true for servers without "#!lua" support.
	Legacy bool
}

func (d Dialect) String() string {
	if d.Legacy {
		return "legacy (no #!lua: a script may run half way when Redis is out of memory)"
	}
	return "redis7 (#!lua)"
}

// Detect asks the server whether it runs "#!lua" scripts.
func Detect(ctx context.Context, c redis.Scripter) (Dialect, error) {
	// no-writes: the probe must work on a server out of memory or read-only.
	err := c.Eval(ctx, shebang+" flags=no-writes\nreturn 1", nil).Err()
	if err == nil {
		return Dialect{}, nil
	}
	if ctx.Err() != nil {
		return Dialect{}, ctx.Err()
	}
	msg := err.Error()
	if strings.Contains(msg, "compil") || strings.Contains(msg, "syntax") || strings.Contains(msg, "Unexpected") {
		if e2 := c.Eval(ctx, "return 1", nil).Err(); e2 != nil {
			return Dialect{}, fmt.Errorf("script: server runs no Lua: %w", e2)
		}
		return Dialect{Legacy: true}, nil
	}
	return Dialect{}, fmt.Errorf("script: detecting Lua support: %w", err)
}

func (s *Script) pick(d Dialect) *redis.Script {
	if d.Legacy {
		return s.legacy
	}
	return s.full
}

// Every call of a script is run one way: EVALSHA by the script's hash,
// and on a NOSCRIPT reply (a server restarted, or reached through a proxy
// or a failover) SCRIPT LOAD and EVALSHA once more; never EVAL of the
// source. Run does it for a call whose reply go-redis reads as a Cmd; Do
// for a command laid out by Args with a reply type of its own (read
// straight into strings, say); a pipeline of calls (package watcher's
// commit) lays them out with Args, and loads the script with Load when a
// reply says NOSCRIPT (IsNoScript) before it sends them again.

// Run runs one call of the script (see above) and returns its command,
// from which the reply is read.
func (s *Script) Run(ctx context.Context, d Dialect, c redis.Scripter, keys []string, args ...any) *redis.Cmd {
	sha := s.Hash(d)
	return Do(ctx, s, d, c, func() *redis.Cmd { return c.EvalSha(ctx, sha, keys, args...) })
}

// Do runs one call of s (see above): send sends it by hash and returns its
// command; when that says NOSCRIPT, Do loads s through c and calls send
// once more. It returns the last command sent; a failed load is its error.
func Do[C redis.Cmder](ctx context.Context, s *Script, d Dialect, c redis.Scripter, send func() C) C {
	cmd := send()
	if !IsNoScript(cmd.Err()) {
		return cmd
	}
	if err := s.Load(ctx, d, c); err != nil {
		cmd.SetErr(err)
		return cmd
	}
	return send()
}

// Args lays out the EVALSHA command of one call of the script, appended to
// dst[:0] (whose array is reused; nil for a new one): "evalsha", the hash,
// the number of keys, the keys, the arguments. Each key and argument is a
// string, a *string (go-redis writes it like the string, and an interface
// holds a pointer without allocating) or a number. Send the command with
// Process, e.g. redis.NewCmd(ctx, args...), through Do or in a pipeline.
func (s *Script) Args(dst []any, d Dialect, keys []any, args ...any) []any {
	dst = append(dst[:0], "evalsha", s.Hash(d), len(keys))
	dst = append(dst, keys...)
	return append(dst, args...)
}

// Load loads the script into the server's script cache.
func (s *Script) Load(ctx context.Context, d Dialect, c redis.Scripter) error {
	return s.pick(d).Load(ctx, c).Err()
}

// Hash is the SHA1 the server knows the script by.
func (s *Script) Hash(d Dialect) string { return s.pick(d).Hash() }

// Code is the code of a script's reply read as integers (see Reply
// convention above); -1 for an empty reply, which no script sends.
func Code(reply []int64) int64 {
	if len(reply) == 0 {
		return -1
	}
	return reply[0]
}

// IsNoScript reports whether err is Redis' NOSCRIPT reply.
func IsNoScript(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}
