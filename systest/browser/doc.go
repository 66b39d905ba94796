// Package browser holds the console's browser tests: a resc replica run
// as a real process with --ui, driven in a headless Chromium through the
// DevTools protocol (chromedp). `make screenshots` writes docs/ui/ with
// them.
//
// It is a module of its own (github.com/resc-go/resc/systest/browser, the
// product module replaced by the working tree): chromedp and cdproto stay
// out of the product's go.mod. `make test` runs it.
package browser
