package systest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/otlptest"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestSecretsNeverShown: a replica whose Redis needs a password and whose
// fetch URLs carry a password and a token, run at debug level and traced
// to a real OTLP receiver: a fetch that succeeds and one that is refused
// (dead-lettered). Neither secret appears in its logs, `resc status`,
// `resc dead list` (text and JSON), the dead-letter entries stored in
// Redis, /metrics, or the exported spans.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	const redisPassword, fetchPassword, fetchToken = "redis-PLANTED-1", "fetch-PLANTED-2", "token-PLANTED-3"
	srv := redistest.Start(t, redistest.Option{"--requirepass", redisPassword})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: redisPassword})
	t.Cleanup(func() { rdb.Close() })
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/p/bad") {
			http.Error(w, "no such product", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, `{"name": "widget"}`)
	}))
	defer api.Close()
	recv := otlptest.Start(t)
	redisURL := "redis://:" + redisPassword + "@" + srv.Addr() + "/0"
	fetchBase := strings.Replace(api.URL, "http://", "http://u:"+fetchPassword+"@", 1)
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+redisURL+`" }
  watchers: [{
    input_queue: in
    rules: [{
      name: enrich
      on: "^prod/(?P<id>\\w+)$"
      fetch: [ { url: "`+fetchBase+`/p/${id}?token=`+fetchToken+`", returns: "p" } ]
      make: { task: "made/${id}/${p.name}", queue: "made/todo" }
    }]
  }]
}`)
	addr := testutil.FreePort(t)
	p := proctest.Start(t, []string{"RESC_LOG=debug", "OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.URL, "OTEL_BSP_SCHEDULE_DELAY=100"},
		"run", "--replica-id", "s1", "--http-addr", addr, cfg)
	p.WaitLog(10*time.Second, "leader: replaying")
	if err := rdb.LPush(t.Context(), "in", "prod/7", "prod/bad1").Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(10*time.Second, "the fetched task", listIs(t, rdb, "made/todo", "made/7/widget"))
	p.Eventually(10*time.Second, "the refused fetch's dead letter", func() (bool, string) {
		n := rdb.LLen(t.Context(), "in/dead").Val()
		return n == 1, fmt.Sprintf("%d dead letters", n)
	})

	outputs := map[string]string{}
	outputs["/metrics"] = scrape(t, "http://"+addr)
	outputs["stored dead letters"] = strings.Join(rdb.LRange(t.Context(), "in/dead", 0, -1).Val(), "\n")
	for _, args := range [][]string{{"status", cfg}, {"status", "--json", cfg}, {"dead", "list", cfg}, {"dead", "list", "--json", cfg}} {
		c := proctest.Start(t, nil, args...)
		if code := c.Wait(20 * time.Second); code != 0 {
			t.Errorf("resc %v: exit %d\n%s", args, code, c.Stderr())
		}
		outputs["resc "+strings.Join(args[:len(args)-1], " ")] = c.Stdout() + c.Stderr()
	}
	p.Stop(10 * time.Second) // flushes the spans
	outputs["replica logs"] = p.Stderr() + p.Stdout()
	var spans []string
	for _, s := range recv.Spans() {
		spans = append(spans, fmt.Sprintf("%s %v", s.Name, s.Attrs))
	}
	outputs["spans"] = strings.Join(spans, "\n")

	// Each output shows what it is about, so that an empty one cannot pass.
	for name, want := range map[string]string{
		"/metrics": `resc_tasks_pushed_total{queue="made/todo"} 1`, "stored dead letters": "404",
		"resc status": "s1", "resc status --json": `"s1"`, "resc dead list": "prod/bad1", "resc dead list --json": "prod/bad1",
		"replica logs": "prod/bad1", "spans": "url.full",
	} {
		if !strings.Contains(outputs[name], want) {
			t.Errorf("%s lacks %q:\n%s", name, want, outputs[name])
		}
	}
	for name, out := range outputs {
		for _, secret := range []string{redisPassword, fetchPassword, fetchToken} {
			if i := strings.Index(out, secret); i >= 0 {
				t.Errorf("%s shows the secret %q: ...%s...", name, secret, out[max(0, i-120):min(len(out), i+40)])
			}
		}
	}
}
