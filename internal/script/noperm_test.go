package script

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
)

// TestNoPermission: a command refused inside a script is named from the
// script's line; one refused outside is named from the command sent; other
// errors are not permission errors.
func TestNoPermission(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-lpos").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "pw"})
	defer c.Close()
	s := New("#!lua\nlocal a = 1\nreturn redis.call('LPOS', KEYS[1], 'x')\n")
	d, err := Detect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(ctx, d, c, []string{"k"}).Err()
	msg, ok := NoPermission(err, "evalsha")
	if !ok || !strings.Contains(msg, "may not run LPOS") || !strings.Contains(msg, "+lpos") {
		t.Errorf("in a script: NoPermission(%v) = %q, %v; want LPOS named", err, msg, ok)
	}
	if CommandUnnamed(err) {
		t.Error("CommandUnnamed true for a script of New")
	}
	foreign := c.Eval(ctx, "return redis.call('LPOS', KEYS[1], 'x')", []string{"k"}).Err()
	if !CommandUnnamed(foreign) {
		t.Errorf("CommandUnnamed(%v) false for a script not made by New", foreign)
	}
	err = c.LPos(ctx, "k", "x", redis.LPosArgs{}).Err()
	if msg, ok := NoPermission(err, "lpos"); !ok || !strings.Contains(msg, "may not run LPOS") {
		t.Errorf("outside a script: NoPermission(%v) = %q, %v; want LPOS named", err, msg, ok)
	}
	for _, err := range []error{nil, errors.New("NOPERM lookalike, not a reply"), c.Get(ctx, "missing").Err(), c.Do(ctx, "NOSUCHCOMMAND").Err()} {
		if msg, ok := NoPermission(err, "get"); ok {
			t.Errorf("NoPermission(%v) = %q, want no permission error", err, msg)
		}
	}
}

// TestRefusedKeys: the keys Redis refuses without naming them are found
// key by key, and named in the message; a channel refusal asks for the
// channel pattern, not the command.
func TestRefusedKeys(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~ok/*", "&ok", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "pw"})
	defer c.Close()
	d, err := Detect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	s := New("#!lua\nreturn redis.call('LPUSH', KEYS[2], 'x')\n")
	err = s.Run(ctx, d, c, []string{"ok/a", "no/b", "no/c"}).Err()
	if !KeysUnnamed(err) || !IsNoPermission(err) {
		t.Fatalf("KeysUnnamed(%v) false", err)
	}
	args := []any{"evalsha", s.Hash(d), 3, "ok/a", "no/b", "no/c", "arg"}
	keys, perr := RefusedKeys(ctx, c, CommandKeys(args))
	if perr != nil || strings.Join(keys, " ") != "no/b no/c" {
		t.Fatalf("RefusedKeys = %q, %v; want [no/b no/c]", keys, perr)
	}
	if msg, ok := NoPermissionKeys(err, "evalsha", keys); !ok || !strings.Contains(msg, "may not access the key no/b, no/c, which EVALSHA uses") {
		t.Errorf("NoPermissionKeys = %q, %v", msg, ok)
	}
	if n := c.LLen(ctx, "ok/a").Val(); n != 0 {
		t.Errorf("the probe wrote: ok/a has %d items", n)
	}
	pub := New("#!lua\nreturn redis.call('PUBLISH', 'secret', 'x')\n")
	err = pub.Run(ctx, d, c, nil).Err()
	if msg, ok := NoPermission(err, "evalsha"); !ok || !strings.Contains(msg, "channel that PUBLISH uses") || strings.Contains(msg, "+publish") {
		t.Errorf("a channel refused in a script: %q, %v", msg, ok)
	}
	if !IsNoPermission(errors.New("ERR The user executing the script can't run this command or subcommand script: x")) || IsNoPermission(errors.New("ERR wrong type")) {
		t.Error("IsNoPermission reads the text of a refusal wrong")
	}
}

// TestCommandKeys: the keys of the commands resc-go sends, as the ACL
// sees them.
func TestCommandKeys(t *testing.T) {
	q := "q/1"
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"evalsha", "sha", 2, "a", &q, "arg"}, "a q/1"},
		{[]any{"eval", "src", "0"}, ""},
		{[]any{"blmove", "in", "taken", "RIGHT", "LEFT", 1}, "in taken"},
		{[]any{"get", "k"}, "k"},
		{[]any{"del", "a", "b"}, "a b"},
		{[]any{"scan", 0}, ""},
		{[]any{"evalsha", "sha", "x"}, ""}, // not a count: nothing guessed
	} {
		if got := strings.Join(CommandKeys(tc.args), " "); got != tc.want {
			t.Errorf("CommandKeys(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestOneCommandPerLine: NoPermission names the command a script was
// refused from the line Redis reports, so no line of a resc-go script
// (any .lua file of the module) calls two commands.
func TestOneCommandPerLine(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root:
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".lua"):
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if n := len(luaCall.FindAllString(line, -1)); n > 1 {
				t.Errorf("%s:%d calls %d commands: one per line, so that a refusal names its command", path, i+1, n)
			}
		}
		return nil
	})
	if err != nil || checked < 10 {
		t.Fatalf("walked %d .lua files: %v", checked, err)
	}
}
