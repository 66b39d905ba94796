package main

import "github.com/resc-go/resc/internal/testutil"

// Helpers of the in-process tests that live in internal/testutil, shared
// with the system tests (package systest), under the names these tests
// know them by.
var (
	list       = testutil.List
	assertList = testutil.AssertList
	freePort   = testutil.FreePort
)
