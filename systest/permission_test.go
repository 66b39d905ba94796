package systest

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// permissionConfig is a configuration whose keys fall under the key
// patterns of the documented ACL rule (docs/redis.md): its input queue and
// taken lists under ~global/*, its task queue and set under ~trt/*; with
// a listener channel when channel is not "".
func permissionConfig(t *testing.T, url, channel string, set bool) string {
	t.Helper()
	listener, setKey := "", ""
	if channel != "" {
		listener = "listener_channel: " + channel
	}
	if set {
		setKey = `, set: "trt/${plant}/todo-set"`
	}
	return testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+url+`", username: "resc" }
  `+listener+`
  cluster: { heartbeat_interval_ms: 200, dead_after_ms: 1000, scan_interval_ms: 200, leader_ttl_ms: 1000 }
  watchers: [{
    input_queue: global/done
    taken_queue: global/taken
    rules: [{ name: "trt", on: "^acq/(?P<plant>\\w+)/(?P<product>\\w+)$", make: { task: "trt/${plant}/${product}", queue: "trt/${plant}/todo"`+setKey+` } }]
  }]
}`)
}

// documentedUser starts a Redis server whose user resc, password "pw",
// has the documented ACL rule, and returns it with a client of its
// default user.
func documentedUser(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.Do(t.Context(), documentedACL(t, "pw")...).Err(); err != nil {
		t.Fatal(err)
	}
	return srv, admin
}

// readyz is the status and body of GET /readyz at addr; status 0 and the
// error when nothing answers.
func readyz(addr string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPermissionTakenAway: a permission taken from the documented ACL
// rule (docs/redis.md) while a replica runs is never taken for an outage:
// the replica stops with exit code 2, naming the command or the key
// refused, stops being ready, and leaves every event it held in its taken
// list (none dead-lettered, none lost). Before, a refused heartbeat was
// logged as "redis unavailable" and retried forever (/readyz 200), and a
// refused task queue dead-lettered the events in flight.
func TestPermissionTakenAway(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		acl  []any  // what ACL SETUSER resc is given while the replica runs
		want string // in the exit message
	}{
		{"-get", []any{"-get"}, `may not run GET\b.*add \+get`},
		{"no ~resc:*", []any{"resetkeys", "~global/*", "~trt/*", "~report/*", "~stats/*"}, `may not access the key resc:`},
		{"no taken list", []any{"resetkeys", "~resc:*", "~global/done", "~global/done/dead", "~trt/*", "~report/*", "~stats/*"}, `may not access the key global/taken/p1`},
		{"no task queue", []any{"resetkeys", "~resc:*", "~global/*", "~report/*", "~stats/*"}, `may not access the key trt/p/todo, `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			srv, admin := documentedUser(t)
			cfg := permissionConfig(t, "redis://"+srv.Addr()+"/0", "", true)
			addr := testutil.FreePort(t)
			p := proctest.Start(t, []string{"RESC_REDIS_PASSWORD=pw", "RESC_LOG=info"}, "run", "--replica-id", "p1", "--http-addr", addr, cfg)
			p.WaitLog(20*time.Second, "resc-go started")
			if err := admin.LPush(ctx, "global/done", "acq/p/0").Err(); err != nil {
				t.Fatal(err)
			}
			p.Eventually(10*time.Second, "the first task, and /readyz 200", func() (bool, string) {
				n := admin.LLen(ctx, "trt/p/todo").Val()
				code, _ := readyz(addr)
				return n == 1 && code == 200, fmt.Sprintf("%d tasks, /readyz %d", n, code)
			})

			if err := admin.Do(ctx, append([]any{"ACL", "SETUSER", "resc"}, tc.acl...)...).Err(); err != nil {
				t.Fatal(err)
			}
			events := []any{"acq/p/1", "acq/p/2", "acq/p/3"}
			if err := admin.LPush(ctx, "global/done", events...).Err(); err != nil {
				t.Fatal(err)
			}
			// Not ready once the watchers stop (after the refusal): polled
			// until the exit.
			var readyAfter []int
			stopPoll := make(chan struct{})
			polled := make(chan struct{})
			go func() {
				defer close(polled)
				for {
					select {
					case <-stopPoll:
						return
					case <-p.Done():
						return
					default:
					}
					stopped := strings.Contains(p.Stderr(), "stopped taking") // before the request
					if code, _ := readyz(addr); code == 200 && stopped {
						readyAfter = append(readyAfter, code)
					}
				}
			}()
			code := p.Wait(20 * time.Second)
			close(stopPoll)
			<-polled
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s", code, p.Stderr())
			}
			if !regexp.MustCompile(`stopped: the Redis user ` + tc.want).MatchString(p.Stderr()) {
				t.Errorf("the exit message does not match %q:\n%s", tc.want, p.Stderr())
			}
			if len(readyAfter) > 0 {
				t.Errorf("/readyz answered 200 %d times after the refusal\n%s", len(readyAfter), p.Stderr())
			}
			if strings.Contains(p.Stderr(), "redis unavailable") {
				t.Errorf("the refusal was logged as an outage:\n%s", p.Stderr())
			}
			// Nothing dead-lettered, nothing lost: each event is a task, or
			// waits in the input queue or the taken list.
			if n := admin.LLen(ctx, "global/done/dead").Val(); n != 0 {
				t.Errorf("%d events dead-lettered because of a permission: %q", n, admin.LRange(ctx, "global/done/dead", 0, -1).Val())
			}
			held := admin.LLen(ctx, "global/done").Val() + admin.LLen(ctx, "global/taken/p1").Val() + admin.LLen(ctx, "trt/p/todo").Val()
			if held != int64(len(events)+1) {
				t.Errorf("%d events in the input queue, the taken list and tasks, want %d", held, len(events)+1)
			}
		})
	}
}

// TestStartWithoutPermission: started as a user whose rule lacks a
// command of the documented ACL rule that a replica runs, `resc run`
// exits 2 at once, naming the command (before: exit 1, GET not named).
func TestStartWithoutPermission(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"get", "lrem", "publish"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			srv, admin := documentedUser(t)
			if err := admin.Do(ctx, "ACL", "SETUSER", "resc", "-"+cmd).Err(); err != nil {
				t.Fatal(err)
			}
			cfg := permissionConfig(t, "redis://"+srv.Addr()+"/0", "events", true)
			p := proctest.Start(t, []string{"RESC_REDIS_PASSWORD=pw"}, "run", "--replica-id", "s1", "--http-addr", "off", cfg)
			if code := p.Wait(20 * time.Second); code != 2 {
				t.Errorf("exit %d, want 2\n%s", code, p.Stderr())
			}
			upper := strings.ToUpper(cmd)
			if !strings.Contains(p.Stderr(), "may not run "+upper) || !strings.Contains(p.Stderr(), "+"+cmd) {
				t.Errorf("the message does not name %s:\n%s", upper, p.Stderr())
			}
		})
	}
}

// TestHalfCommitRequeued: a user that had every permission loses +publish
// while a replica commits with a listener channel. Before, each commit
// pushed its task, failed at PUBLISH and dead-lettered its event, and once
// +publish was back, `resc dead requeue --all` pushed every task a second
// time (400 tasks for 200 events). commit.lua now checks its commands
// before it writes, for every user: the replica stops naming PUBLISH,
// nothing is half committed, and after the permission is back, the
// requeue and a restart under the same id make each task exactly once.
func TestHalfCommitRequeued(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "resc", "on", ">pw", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	// No dedup set: a task pushed twice shows.
	cfg := permissionConfig(t, "redis://"+srv.Addr()+"/0", "events", false)
	env := []string{"RESC_REDIS_PASSWORD=pw", "RESC_LOG=info"}
	start := func() *proctest.Process {
		p := proctest.Start(t, env, "run", "--replica-id", "h1", "--http-addr", "off", cfg)
		p.WaitLog(20*time.Second, "resc-go started")
		return p
	}
	p := start()
	if err := admin.Do(ctx, "ACL", "SETUSER", "resc", "-publish").Err(); err != nil {
		t.Fatal(err)
	}
	const n = 200
	events := make([]any, n)
	for i := range events {
		events[i] = "acq/p/" + strconv.Itoa(i)
	}
	if err := admin.LPush(ctx, "global/done", events...).Err(); err != nil {
		t.Fatal(err)
	}
	// A refused command stops the replica (exit 2, naming it), with every
	// event still in the taken list or the input queue: nothing half
	// written, nothing dead-lettered.
	if code := p.Wait(30 * time.Second); code != 2 || !strings.Contains(p.Stderr(), "may not run PUBLISH") {
		t.Fatalf("exit %d without +publish, want 2 naming PUBLISH:\n%s", code, p.Stderr())
	}
	if in, taken, dead := admin.LLen(ctx, "global/done").Val(), admin.LLen(ctx, "global/taken/h1").Val(), admin.LLen(ctx, "global/done/dead").Val(); in+taken+dead != n {
		t.Fatalf("%d in the input queue, %d taken, %d dead: want %d events in all", in, taken, dead, n)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "resc", "+publish").Err(); err != nil {
		t.Fatal(err)
	}
	requeue := proctest.Start(t, env, "dead", "requeue", "--all", cfg)
	if code := requeue.Wait(20 * time.Second); code != 0 {
		t.Fatalf("resc dead requeue --all: exit %d\n%s", code, requeue.Stderr())
	}
	p = start() // the same id: it replays its own taken list first
	p.Eventually(30*time.Second, "every event handled", func() (bool, string) {
		left := admin.LLen(ctx, "global/done").Val() + admin.LLen(ctx, "global/taken/h1").Val() + admin.LLen(ctx, "global/done/dead").Val()
		return left == 0 && admin.LLen(ctx, "trt/p/todo").Val() >= n, fmt.Sprintf("%d events left, %d tasks", left, admin.LLen(ctx, "trt/p/todo").Val())
	})
	tasks := admin.LRange(ctx, "trt/p/todo", 0, -1).Val()
	if len(tasks) != n {
		t.Errorf("%d tasks for %d events (a half commit requeued pushes again)", len(tasks), n)
	}
	p.Stop(20 * time.Second)
}
