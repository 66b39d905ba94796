package loadtest

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in fixed memory, whatever the length of the
// run: log-linear buckets, 64 per power of two, so that a percentile is
// within 1/64 (1.6%) of the true value; the count, sum and maximum are
// exact. Not safe for concurrent use.
type histogram struct {
	counts [64 * 64]uint64
	n      uint64
	sum    float64
	max    time.Duration
}

const subBuckets = 64

// bucket returns the bucket of a duration in nanoseconds. Values below 64 ns
// have a bucket each; above, the top 6 bits after the leading one select
// the sub-bucket of the value's power of two.
func bucket(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	exp := bits.Len64(v) - 7 // shift that leaves 7 significant bits
	return (exp+1)*subBuckets + int(v>>exp) - subBuckets
}

// bucketHigh is the largest value of bucket b.
func bucketHigh(b int) uint64 {
	if b < subBuckets {
		return uint64(b)
	}
	exp := b/subBuckets - 1
	mant := uint64(b%subBuckets + subBuckets)
	return (mant+1)<<exp - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d))]++
	h.n++
	h.sum += float64(d)
	h.max = max(h.max, d)
}

// quantile returns the q-quantile (0 < q <= 1): the upper bound of the
// bucket holding it, capped at the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketHigh(b)), h.max)
		}
	}
	return h.max
}

// Latency is a summary of measured latencies, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func (h *histogram) summary() *Latency {
	if h.n == 0 {
		return nil
	}
	return &Latency{
		Count: h.n,
		Mean:  h.sum / float64(h.n) / 1e6,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(h.max),
	}
}
