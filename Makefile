# resc-go: the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
CONFIG    ?= examples/demo.hjson
STATICCHECK_VERSION ?= v0.8.2

.PHONY: run test test-product test-harnesses chaos build lint vet tidy bench loadtest screenshots clean

# The modules of the repository: the product (.) and, beside it, the test
# harnesses with heavy dependencies (the load generator, the deployment
# files' checks with compose-go and hcl, the console's browser tests with
# chromedp), each with its own go.mod so that the product's go.mod does not
# require them (docs/architecture.md). vet, test, lint and bench run in all
# of them; internal/layering fails on a go.mod missing here.
HARNESS_MODULES := loadtest deploy/check systest/browser
MODULES         := . $(HARNESS_MODULES)

# each-module runs `go -C <module> $(2)` in every module of $(1), in all of
# them even after a failure, and fails if one did.
define each-module
	@status=0; for m in $(1); do \
	  echo "go -C $$m $(2)"; $(GO) -C $$m $(2) || status=1; \
	done; exit $$status
endef

## run: start resc on the example configuration, with the web console at
## http://127.0.0.1:9464/ui/ (docs/ui.md); without a reachable Redis at its
## URL, an embedded in-memory server is started instead (for trying only).
run:
	RESC_LOG=$${RESC_LOG:-info} \
	RESC_UI_TOKEN=$${RESC_UI_TOKEN:-$$( [ -n "$$RESC_UI_TOKEN_FILE" ] || echo auto)} \
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/resc run --embedded=auto --ui $(CONFIG)

## test: install redis-server (and chromium, for the console's browser
## tests) if missing, then every test of every module with -race: the
## product's and, at the same time, the harness modules' (their tests wait
## on builds and processes more than they use the CPU). Each package is
## vetted on the way with all of go vet's analyzers (-vet=all: the checks
## of `go vet`, on the race build's compiled packages instead of a second,
## non-race build of everything). -parallel 4: the parallel tests (systest's,
## each with its own redis-server and resc processes) mostly wait on
## processes and timeouts, so four at a time on two cores.
TESTFLAGS ?= -race -shuffle=on -count=1 -timeout 10m -vet=all -parallel 4
test:
	./scripts/ensure-redis.sh
	./scripts/ensure-chromium.sh
	@$(MAKE) --no-print-directory -j2 test-product test-harnesses

# The product's slowest packages are listed first: go test starts the
# packages' tests in the order given, at most -p at a time, and one listed
# last would run alone at the end (systest's processes and timeouts). -p 3:
# while systest's tests wait on their processes, two more packages build or
# run beside it.
SLOW_FIRST := ./systest/ ./examples/worker/ ./watcher/
test-product:
	$(GO) test $(TESTFLAGS) -p 3 $(SLOW_FIRST) ./...

test-harnesses:
	$(call each-module,$(HARNESS_MODULES),test $(TESTFLAGS) ./...)

## chaos: the long chaos runs, printing their figures: a soak of RESC_SOAK
## (random SIGKILLs and SIGTERMs under load, fast cluster timings), the
## same soak on a 3-master Redis Cluster (TestClusterSoak), and
## RESC_RECOVERY_KILLS kills each of a replica and of the leader with the
## default cluster settings (recovery p50/p99/max). `make test` runs them
## short. Without -race: the figures are the product's, and the harness is
## race-tested by `make test`; -parallel runs the recovery clusters at once.
RESC_SOAK           ?= 3m
RESC_RECOVERY_KILLS ?= 40
chaos:
	./scripts/ensure-redis.sh
	RESC_SOAK=$(RESC_SOAK) RESC_CLUSTER_SOAK=$(RESC_SOAK) RESC_RECOVERY_KILLS=$(RESC_RECOVERY_KILLS) \
	  $(GO) test -count=1 -v -parallel 16 -timeout 60m -run '^(TestSoak|TestClusterSoak|TestRecoveryTime)$$' ./systest/

## build: a static binary in bin/resc with the version stamped in.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/resc ./cmd/resc

vet:
	$(call each-module,$(MODULES),vet ./...)

## tidy: go mod tidy in every module, the product first: a harness module
## takes the product's requirements through its replace directive, so a
## change to the product's go.mod needs its go.sum updated too.
tidy:
	$(call each-module,$(MODULES),mod tidy)

## lint: gofmt, vet, the layering of the packages (internal/layering,
## docs/architecture.md "Layers") and staticcheck (pinned).
lint: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -count=1 ./internal/layering/
	$(call each-module,$(MODULES),run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...)

## bench: the Go benchmarks of the hot paths.
bench: 
	./scripts/ensure-redis.sh
	$(call each-module,$(MODULES),test -run '^$$' -bench . -benchmem ./...)

## loadtest: a short load test, about a minute on 2 cores, each run printing
## its report (docs/loadtest.md, BENCHMARKS.md): 200k events as fast as
## possible with resc's algorithm measured beside (the ratio), 10 s at 20,000
## events/s (latency), single events at rest, the exactly-once check with 3
## replicas and a rule without set, and a short k6 run when k6 is installed.
## LOADTEST_K6=install first installs the pinned k6 with go install (through
## the Go module proxy; about 6 minutes of compiling on 2 cores, once).
K6_VERSION  ?= v1.8.1
LOADTEST_K6 ?= auto
GOBIN_DIR    = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
loadtest:
	./scripts/ensure-redis.sh
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/resc ./cmd/resc
	$(GO) -C loadtest build -o $(CURDIR)/bin/resc-load ./cmd/resc-load
	bin/resc-load --resc bin/resc --mode throughput --events 200000
	bin/resc-load --resc bin/resc --mode rate --rate 20000 --duration 10s
	bin/resc-load --resc bin/resc --mode idle --events 200
	bin/resc-load --resc bin/resc --mode throughput --events 200000 --replicas 3 --set=false --baseline=false
	@if [ "$(LOADTEST_K6)" = install ]; then $(GO) install go.k6.io/k6@$(K6_VERSION); fi
	@k6=$$(command -v k6 || { [ -x "$(GOBIN_DIR)/k6" ] && echo "$(GOBIN_DIR)/k6"; }); \
	  if [ -n "$$k6" ]; then \
	    bin/resc-load --resc bin/resc --mode k6 --k6 "$$k6" --k6-arg -q --rate 2000 --duration 5s --set=false --baseline=false; \
	  else \
	    echo "k6 not installed: skipped (make loadtest LOADTEST_K6=install installs go.k6.io/k6@$(K6_VERSION))"; \
	  fi

## screenshots: the console's pages in docs/ui/, by its browser test.
screenshots:
	./scripts/ensure-redis.sh
	./scripts/ensure-chromium.sh
	RESC_UI_SCREENSHOTS=$(CURDIR)/docs/ui $(GO) -C systest/browser test -count=1 -run '^TestConsoleInBrowser$$' ./...

clean:
	rm -rf bin
