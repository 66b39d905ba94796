package script

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// sources maps the SHA1 of every script New made, in both forms, to its
// source: what NoPermission reads to name the command a script was refused.
var sources sync.Map

func register(s *redis.Script, src string) { sources.Store(s.Hash(), src) }

var (
	// Redis 7 refusing a command inside a script: "... can't run this
	// command or subcommand script: <sha>, on @user_script:<line>." (or
	// "can't access at least one of the keys ..." for a key, "can't
	// publish to the channel ..." for a channel).
	scriptRefusal = regexp.MustCompile(`script: ([0-9a-f]{40}), on @user_script:(\d+)`)
	// The command a line of Lua calls.
	luaCall = regexp.MustCompile(`redis\.p?call\(\s*'([A-Za-z]+)'`)
)

// refusalText tells, from its text alone, an error that reports Redis
// refusing a command, key or channel to the ACL user: a NOPERM reply, or
// the words of a refusal inside a script (which Redis 7 replies with ERR,
// and which commit.lua passes on as the detail of its reply).
func refusalText(msg string) bool {
	return strings.HasPrefix(msg, "NOPERM") || strings.Contains(msg, "The user executing the script can't")
}

// IsNoPermission reports whether err, a reply of Redis or an error made
// from one's text, is Redis refusing a command, a key or a channel to the
// ACL user: a permission missing, which no retry mends, never an outage.
func IsNoPermission(err error) bool {
	return err != nil && refusalText(err.Error())
}

// KeysUnnamed reports whether err is Redis refusing one of the keys a
// command named without saying which ("no permissions to access one of
// the keys used as arguments"): RefusedKeys finds it.
func KeysUnnamed(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOPERM") && strings.Contains(re.Error(), "keys")
}

// CommandUnnamed reports whether err is a refusal inside a script that is
// not one of resc-go's (New): NoPermission cannot name its command.
func CommandUnnamed(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) || !strings.Contains(re.Error(), "The user executing the script can't run") {
		return false
	}
	m := scriptRefusal.FindStringSubmatch(re.Error())
	if m == nil {
		return true
	}
	_, ours := sources.Load(m[1])
	return !ours
}

// NoPermission tells whether err is Redis refusing a command, a key or a
// channel to the ACL user, and if so says which in words an operator can
// act on: for a refusal inside a script, the command the refused line of
// the script calls; cmd is the command sent (e.g. "evalsha"). A key
// Redis does not name is named by NoPermissionKeys.
func NoPermission(err error, cmd string) (string, bool) {
	return NoPermissionKeys(err, cmd, nil)
}

// NoPermissionKeys is NoPermission naming keys, the keys of the command
// the ACL user may not access (RefusedKeys), when Redis refused one
// without naming it.
func NoPermissionKeys(err error, cmd string, keys []string) (string, bool) {
	var re redis.Error
	if err == nil || !errors.As(err, &re) {
		return "", false
	}
	msg := re.Error()
	keyed := strings.Contains(msg, "keys") || strings.Contains(msg, "key ")
	channel := strings.Contains(msg, "channel")
	upper := strings.ToUpper(cmd)
	switch {
	case strings.HasPrefix(msg, "NOPERM resc-go "):
		_, words, _ := strings.Cut(strings.TrimPrefix(msg, "NOPERM resc-go "), ": ")
		return words, true // a script's own check, already in words
	case strings.HasPrefix(msg, "NOPERM") && channel:
		return "the Redis user may not use a channel of " + upper + " (" + msg + "): add the channel pattern (&...) to its ACL rule", true
	case strings.HasPrefix(msg, "NOPERM") && keyed && len(keys) > 0:
		return fmt.Sprintf("the Redis user may not access the key %s, which %s uses (%s): add a pattern matching it (~...) to its ACL rule", strings.Join(keys, ", "), upper, msg), true
	case strings.HasPrefix(msg, "NOPERM") && keyed:
		return "the Redis user may not access a key of " + upper + " (" + msg + "): add the key pattern to its ACL rule", true
	case strings.HasPrefix(msg, "NOPERM"):
		return "the Redis user may not run " + upper + " (" + msg + "): add +" + strings.ToLower(cmd) + " to its ACL rule", true
	case strings.Contains(msg, "The user executing the script can't"):
	default:
		return "", false
	}
	called := "a command"
	if m := scriptRefusal.FindStringSubmatch(msg); m != nil {
		if src, ok := sources.Load(m[1]); ok {
			line, _ := strconv.Atoi(m[2])
			if lines := strings.Split(src.(string), "\n"); line >= 1 && line <= len(lines) {
				if c := luaCall.FindStringSubmatch(lines[line-1]); c != nil {
					called = strings.ToUpper(c[1])
				}
			}
		}
	}
	switch {
	case channel:
		return "the Redis user may not use the channel that " + called + " uses in a resc-go script (" + msg + "): add the channel pattern (&...) to its ACL rule", true
	case keyed:
		return "the Redis user may not access a key that " + called + " uses in a resc-go script (" + msg + "): add the key pattern to its ACL rule", true
	}
	hint := "add the command to its ACL rule"
	if called != "a command" {
		hint = "add +" + strings.ToLower(called) + " to its ACL rule"
	}
	return "the Redis user may not run " + called + ", which a resc-go script calls (" + msg + "): " + hint, true
}

// probeSHA is the SHA1 of a script no server is asked to load. Redis
// checks the keys of EVALSHA against the ACL before it looks the script
// up: EVALSHA probeSHA 1 key answers NOPERM for a key the user may not
// access (read and write, as every resc-go script needs), NOSCRIPT for
// one it may, and runs nothing either way.
var probeSHA = func() string {
	h := sha1.Sum([]byte("-- resc-go: key permission probe, never loaded"))
	return hex.EncodeToString(h[:])
}()

// maxProbes bounds the keys RefusedKeys asks about.
const maxProbes = 256

// RefusedKeys returns the keys among keys that the ACL user of c may not
// access, asking Redis one EVALSHA per distinct key (up to 256), in one
// pipeline: for the refusals Redis words without the key (KeysUnnamed).
// It needs the permission to run EVALSHA, which every resc-go user has.
func RefusedKeys(ctx context.Context, c redis.Cmdable, keys []string) ([]string, error) {
	seen := map[string]bool{}
	var distinct []string
	for _, k := range keys {
		if !seen[k] && len(distinct) < maxProbes {
			seen[k] = true
			distinct = append(distinct, k)
		}
	}
	pipe := c.Pipeline()
	cmds := make([]*redis.Cmd, len(distinct))
	for i, k := range distinct {
		cmds[i] = pipe.EvalSha(ctx, probeSHA, []string{k})
	}
	_, _ = pipe.Exec(ctx) // read per command
	var refused []string
	for i, cmd := range cmds {
		switch err := cmd.Err(); {
		case err == nil || IsNoScript(err):
		case strings.HasPrefix(err.Error(), "NOPERM"):
			refused = append(refused, distinct[i])
		default:
			return refused, fmt.Errorf("script: probing the permission of key %q: %w", distinct[i], err)
		}
	}
	return refused, nil
}

// CommandKeys returns the keys of a command as sent (args[0] is its
// name): the declared keys of EVAL and EVALSHA, and for the other
// commands resc-go sends, the key positions Redis gives them (the first
// argument, both lists of a move, every argument of a multi-key read or
// delete).
func CommandKeys(args []any) []string {
	if len(args) < 2 {
		return nil
	}
	str := func(a any) string {
		switch v := a.(type) {
		case string:
			return v
		case *string:
			return *v
		case []byte:
			return string(v)
		}
		return fmt.Sprint(a)
	}
	var pos []int
	switch name := strings.ToLower(str(args[0])); name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		if len(args) < 3 {
			return nil
		}
		n, err := strconv.Atoi(str(args[2]))
		if err != nil || n < 0 || 3+n > len(args) {
			return nil
		}
		for i := 3; i < 3+n; i++ {
			pos = append(pos, i)
		}
	case "mget", "del", "exists", "unlink", "touch":
		for i := 1; i < len(args); i++ {
			pos = append(pos, i)
		}
	case "lmove", "blmove", "rpoplpush", "brpoplpush", "rename", "copy":
		pos = []int{1, 2}
	case "scan", "ping", "info", "hello", "auth", "select", "client", "acl", "script", "multi", "exec", "publish", "command", "cluster":
		return nil // no key
	default:
		pos = []int{1}
	}
	keys := make([]string, 0, len(pos))
	for _, i := range pos {
		if i < len(args) {
			keys = append(keys, str(args[i]))
		}
	}
	return keys
}
