package httplimit_test

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/httplimit"
)

// TestHeadersOfHugeLimit (issue 11, item 6): a limit whose durations
// saturate (a year per token, a burst of 1,000: after 293 requests the
// bucket is more than the longest time.Duration, 292 years, from full)
// still gets non-negative header values.
func TestHeadersOfHugeLimit(t *testing.T) {
	const cfg = `
default_tier: free
tiers:
  free:
    limits:
      lifetime: {rate: 1, period: 366d, burst: 99}
`
	number := regexp.MustCompile(`[qwrt]=(-?[0-9]+)`)
	backends(t, func(t *testing.T, rdb redis.Scripter) {
		h := httplimit.New(limiterFrom(t, rdb, cfg))(hello)
		for i := range 99 {
			rec := do(h, request{remote: "203.0.113.7:1"})
			if rec.Code != http.StatusOK {
				t.Fatalf("request %d: %d", i, rec.Code)
			}
			if t.Failed() {
				return
			}
			for _, f := range []string{"RateLimit-Policy", "RateLimit"} {
				v := rec.Header().Get(f)
				ms := number.FindAllStringSubmatch(v, -1)
				if len(ms) == 0 {
					t.Errorf("request %d: %s: %q has no parameters", i, f, v)
				}
				for _, m := range ms {
					if n, err := strconv.ParseInt(m[1], 10, 64); err != nil || n < 0 || n > 999_999_999_999_999 {
						t.Errorf("request %d: %s: %q: %s is not a structured-field integer >= 0", i, f, v, m[0])
					}
				}
			}
		}
	})
}
