package httplimit_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
)

// TestCalendarQuotaHeaders: a daily quota in Paris on the day the clocks
// go forward (23 hours): after one request at 12:00, more quota comes at
// the next midnight, 12 h later, and the RateLimit field says t=43200;
// the policy says q (the quota) over a nominal day.
func TestCalendarQuotaHeaders(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	daily := algorithms.CalendarWindow{Period: algorithms.Day, Location: paris}
	l, err := algorithms.NewLimiter(rdb, daily.Limit(10), algorithms.WithAlgorithm(daily))
	if err != nil {
		t.Fatal(err)
	}
	mr.SetTime(time.Date(2025, 3, 30, 12, 0, 0, 0, paris))
	h := httplimit.Limit(l)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "203.0.113.7:1"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	m := regexp.MustCompile(`;t=([0-9]+)`).FindStringSubmatch(rec.Header().Get("RateLimit"))
	if m == nil {
		t.Fatalf("RateLimit %q has no t", rec.Header().Get("RateLimit"))
	}
	if got, _ := strconv.Atoi(m[1]); got != 12*3600 {
		t.Fatalf("RateLimit %q: t=%d, want 43200 (the next midnight in Paris)", rec.Header().Get("RateLimit"), got)
	}
	if p := rec.Header().Get("RateLimit-Policy"); !regexp.MustCompile(`;q=10;w=86400`).MatchString(p) {
		t.Fatalf("RateLimit-Policy %q, want q=10;w=86400", p)
	}
}
