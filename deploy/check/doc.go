// Package check holds the tests of the deployment files of resc-go (the
// files are one directory up, in deploy/), which check them without Docker
// or Nomad:
//
//	Dockerfile              the images: resc (default target) and demo
//	docker-compose.yml      the demo: Redis, Jaeger, three replicas, the
//	                        demo API and workers (docs/deploy.md)
//	resc.hjson              the configuration of the compose demo
//	nomad/resc.nomad.hcl    a Nomad job: count replicas, rolling updates
//	healthcheck/            the container health check (no shell in the
//	                        image; a program of the product module)
//
// The tests load the compose file with compose-go (as docker compose
// does), the Nomad job with the HCL parser Nomad uses, and the Dockerfile
// as text, and check what the files promise: replica ids, wiring, health
// checks, grace periods above the drain timeout, a static non-root image.
//
// It is a module of its own (github.com/resc-go/resc/deploy/check, the
// product module replaced by the working tree): compose-go, hcl and go-cty
// stay out of the product's go.mod. `make test` runs it.
package check
