package testutil

import (
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// List returns the content of a Redis list, head first, failing the test
// on an error.
func List(t TB, rdb redis.ListCmdable, key string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	l, err := rdb.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return l
}

// AssertList checks the content of a Redis list, head first.
func AssertList(t TB, rdb redis.ListCmdable, key string, want ...string) {
	t.Helper()
	if got := List(t, rdb, key); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}
