package script

import (
	"errors"
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
	// "can't access at least one of the keys ..." for a key).
	scriptRefusal = regexp.MustCompile(`script: ([0-9a-f]{40}), on @user_script:(\d+)`)
	// The command a line of Lua calls.
	luaCall = regexp.MustCompile(`redis\.p?call\(\s*'([A-Za-z]+)'`)
)

// NoPermission tells whether err is Redis refusing a command or a key to
// the ACL user, and if so says which command in words an operator can act
// on: for a refusal inside a script, the command the refused line of the
// script calls; cmd is the command sent (e.g. "evalsha").
func NoPermission(err error, cmd string) (string, bool) {
	var re redis.Error
	if err == nil || !errors.As(err, &re) {
		return "", false
	}
	msg := re.Error()
	keys := strings.Contains(msg, "keys") || strings.Contains(msg, "key ")
	switch {
	case strings.HasPrefix(msg, "NOPERM resc-go "):
		_, words, _ := strings.Cut(strings.TrimPrefix(msg, "NOPERM resc-go "), ": ")
		return words, true // a script's own check, already in words
	case strings.HasPrefix(msg, "NOPERM"):
		if keys {
			return "the Redis user may not access a key of " + strings.ToUpper(cmd) + " (" + msg + "): add the key pattern to its ACL rule", true
		}
		return "the Redis user may not run " + strings.ToUpper(cmd) + " (" + msg + "): add +" + strings.ToLower(cmd) + " to its ACL rule", true
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
	if keys {
		return "the Redis user may not access a key that " + called + " uses in a resc-go script (" + msg + "): add the key pattern to its ACL rule", true
	}
	hint := "add the command to its ACL rule"
	if called != "a command" {
		hint = "add +" + strings.ToLower(called) + " to its ACL rule"
	}
	return "the Redis user may not run " + called + ", which a resc-go script calls (" + msg + "): " + hint, true
}
