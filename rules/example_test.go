package rules_test

import (
	"fmt"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/rules"
)

// The example of resc's README: an acquisition event makes a treatment task.
func ExampleRuleset_Match() {
	w := config.Watcher{
		InputQueue: "global/events",
		Rules: []config.Rule{{
			Name: "acquisitions",
			On:   `^acq/(?P<process_id>\d+)/(?P<product_id>\d+)$`,
			Make: []config.Maker{{
				Task:  "trt/${process_id}/${product_id}",
				Queue: "trt/${process_id}/todo",
			}},
		}},
	}
	rs, problems := rules.Compile("resc.hjson", w)
	if problems != nil {
		fmt.Println(problems)
		return
	}
	for _, event := range []string{"acq/123/456", "trt/123/456"} {
		matches := rs.Match(event)
		fmt.Printf("%s: %d matching rule(s)\n", event, len(matches))
		for _, m := range matches {
			for _, v := range m.Vars() {
				fmt.Printf("  %s = %s\n", v.Name, v.Value)
			}
			for _, t := range m.Make(nil, nil) {
				fmt.Printf("  rule %q pushes %q to %q\n", t.Rule, t.Task, t.Queue)
			}
		}
	}
	// Output:
	// acq/123/456: 1 matching rule(s)
	//   input_task = acq/123/456
	//   process_id = 123
	//   product_id = 456
	//   rule "acquisitions" pushes "trt/123/456" to "trt/123/todo"
	// trt/123/456: 0 matching rule(s)
}
