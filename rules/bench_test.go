package rules

import (
	"fmt"
	"testing"

	"github.com/resc-go/resc/config"
)

// BenchmarkMatchMake is the path of an event without fetch: one rule with two
// groups and a set, matched and made.
func BenchmarkMatchMake(b *testing.B) {
	rs := mustCompile(b, config.Rule{
		Name: "acq",
		On:   `^acq/(?P<process_id>\d+)/(?P<product_id>\d+)$`,
		Make: []config.Maker{mk("trt/${process_id}/${product_id}", "trt/${process_id}/todo", "trt/${process_id}/set")},
	})
	benchmarkMatchMake(b, rs, "acq/123/456", 1)
}

// BenchmarkMatchMake10Rules has ten rules of which one matches.
func BenchmarkMatchMake10Rules(b *testing.B) {
	var rules []config.Rule
	for i := range 10 {
		rules = append(rules, config.Rule{
			Name: fmt.Sprintf("r%d", i),
			On:   fmt.Sprintf(`^kind%d/(?P<process_id>\d+)/(?P<product_id>\d+)$`, i),
			Make: []config.Maker{mk("trt/${process_id}/${product_id}", "trt/${process_id}/todo", "trt/${process_id}/set")},
		})
	}
	rs := mustCompile(b, rules...)
	benchmarkMatchMake(b, rs, "kind7/123/456", 1)
}

func benchmarkMatchMake(b *testing.B, rs *Ruleset, event string, want int) {
	dst := make([]Task, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		dst = dst[:0]
		for _, m := range rs.Match(event) {
			dst = m.Make(nil, dst)
		}
		if len(dst) != want {
			b.Fatalf("%d tasks, want %d", len(dst), want)
		}
	}
}

// BenchmarkFetchRequests is the fetch URL of an event: a rule whose fetcher
// puts a group in the path and one in the query, the values needing no
// escape (then escaping costs no allocation).
func BenchmarkFetchRequests(b *testing.B) {
	rs := mustCompile(b, config.Rule{
		Name:  "children",
		On:    `^trt/(?P<process_id>\d+)/(?P<product_id>\w+)$`,
		Fetch: []config.Fetcher{{URL: "http://svc/products/${product_id}/children?process=${process_id}", Returns: "child"}},
		Make:  []config.Maker{mk("trt/${child.processId}/${child.productId}", "trt/${child.processId}/todo", "")},
	})
	b.ReportAllocs()
	for b.Loop() {
		ms := rs.Match("trt/123/5ab7e7dc00000040")
		reqs, err := ms[0].FetchRequests()
		if err != nil || len(reqs) != 1 {
			b.Fatal(reqs, err)
		}
	}
}
