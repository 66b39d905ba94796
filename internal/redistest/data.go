package redistest

import (
	"context"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Data is the contents of a server for tables written as "Redis before,
// call, Redis after": key -> value, where a string is a STRING, a List a
// LIST, a Hash a HASH and a ZSet a ZSET. Compare two with reflect.DeepEqual.
type Data map[string]any

// List is a LIST, head (left) first. An alias, so that a []string literal
// is one too.
type List = []string

// Hash is a HASH, field -> value. An alias of map[string]string.
type Hash = map[string]string

// ZSet is a ZSET, member -> score. An alias of map[string]float64.
type ZSet = map[string]float64

// Load writes d to the server of rdb; an empty List, Hash or ZSet writes
// nothing, as Redis has no empty collections. It fails the test on a value
// of another type than those of Data, or on an error.
func Load(t testing.TB, rdb *redis.Client, d Data) {
	t.Helper()
	ctx := context.Background()
	for k, v := range d {
		var err error
		switch v := v.(type) {
		case string:
			err = rdb.Set(ctx, k, v, 0).Err()
		case List:
			if len(v) == 0 {
				continue
			}
			vs := make([]any, len(v))
			for i, s := range v {
				vs[i] = s
			}
			err = rdb.RPush(ctx, k, vs...).Err()
		case Hash:
			if len(v) == 0 {
				continue
			}
			err = rdb.HSet(ctx, k, v).Err()
		case ZSet:
			if len(v) == 0 {
				continue
			}
			zs := make([]redis.Z, 0, len(v))
			for m, s := range v {
				zs = append(zs, redis.Z{Score: s, Member: m})
			}
			err = rdb.ZAdd(ctx, k, zs...).Err()
		default:
			t.Fatalf("redistest: loading %s: unsupported %T", k, v)
		}
		if err != nil {
			t.Fatalf("redistest: loading %s: %v", k, err)
		}
	}
}

// Dump reads the keys of the server of rdb that match pattern ("*": all
// of them) with their values. It fails the test on a key of another type
// than those of Data, or on an error.
func Dump(t testing.TB, rdb *redis.Client, pattern string) Data {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	d := Data{}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "zset":
			var zs []redis.Z
			zs, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			z := ZSet{}
			for _, m := range zs {
				z[m.Member.(string)] = m.Score
			}
			v = z
		default:
			t.Fatalf("redistest: dumping %s: unexpected type %s", k, typ)
		}
		if err != nil {
			t.Fatalf("redistest: dumping %s: %v", k, err)
		}
		d[k] = v
	}
	return d
}

// Prefixed returns d with every key prefixed by p: the keys of one case
// of a table, beside the other cases' on the same server.
func Prefixed(p string, d Data) Data {
	out := Data{}
	for k, v := range d {
		out[p+k] = v
	}
	return out
}

// CheckAfter fails the test unless the keys of the server of rdb that
// start with p hold exactly want, its keys taken without p ("Redis after").
func CheckAfter(t testing.TB, rdb *redis.Client, p string, want Data) {
	t.Helper()
	if got, w := Dump(t, rdb, p+"*"), Prefixed(p, want); !reflect.DeepEqual(got, w) {
		t.Errorf("Redis after:\n got %#v\nwant %#v", got, w)
	}
}
