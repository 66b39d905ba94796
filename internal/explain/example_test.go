package explain_test

import (
	"context"
	"fmt"
	"os"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/explain"
	"github.com/resc-go/resc/rules"
)

// The example of resc's README: an acquisition event makes a treatment task,
// other events make nothing.
func ExampleExplain() {
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
	watchers := []explain.Watcher{{InputQueue: w.InputQueue, Rules: rs}}
	events := []string{"acq/123/456", "trt/123/456"}
	// No fetcher: a dry run that calls nothing.
	if err := explain.Explain(context.Background(), os.Stdout, watchers, events, nil); err != nil {
		fmt.Println(err)
	}
	// Output:
	// event "acq/123/456"
	//   on global/events:
	//     rule "acquisitions" matches
	//       vars: input_task="acq/123/456" process_id="123" product_id="456"
	//       task "trt/123/456" -> queue "trt/123/todo"
	// event "trt/123/456"
	//   on global/events: no rule matches
}
