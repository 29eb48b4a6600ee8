package httplimit_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/httplimit"
)

// TestRefusalBody: a 429 is an RFC 9457 problem (the draft's
// quota-exceeded type, naming the refusing policy) when the client
// prefers JSON to plain text, and plain text otherwise.
func TestRefusalBody(t *testing.T) {
	tests := []struct {
		accept  string
		problem bool
	}{
		{"", false},
		{"*/*", false},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"text/plain, application/json", false},
		{"application/json;q=0.9, */*", false},
		{"application/problem+json;q=0", false},
		{"application/problem+json;q=0, application/json", false}, // refused by name: the more specific range wins
		{"application/json, application/problem+json;q=0", false},
		{"application/json;q=0, application/problem+json", true},
		{"application/problem+json", true},
		{"application/json", true},
		{"Application/JSON", true},
		{"application/*", true},
		{"application/json, text/plain;q=0.5", true},
		{"text/plain;q=0.1, */*", true}, // anything rather than plain text
		{"text/plain;q=0.1, application/problem+json;q=0.2", true},
	}
	rdb, _ := frozen(t)
	h := httplimit.Limit(newLimiter(t, rdb, ratelimit.PerMinute(1)))(hello)
	for i, tt := range tests {
		client := request{remote: fmt.Sprintf("192.0.2.%d:1", i+1), header: http.Header{}}
		if tt.accept != "" {
			client.header.Set("Accept", tt.accept)
		}
		do(h, client)
		rec := do(h, client)
		if rec.Code != 429 || !strings.Contains(rec.Header().Get("Vary"), "Accept") {
			t.Errorf("Accept %q: %d, Vary %q", tt.accept, rec.Code, rec.Header().Get("Vary"))
		}
		ctype := rec.Header().Get("Content-Type")
		if !tt.problem {
			if ctype != "text/plain; charset=utf-8" || rec.Body.String() != "rate limit exceeded\n" {
				t.Errorf("Accept %q: %s %q, want plain text", tt.accept, ctype, rec.Body.String())
			}
			continue
		}
		var p struct {
			Type     string   `json:"type"`
			Title    string   `json:"title"`
			Status   int      `json:"status"`
			Violated []string `json:"violated-policies"`
		}
		if ctype != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			t.Errorf("Accept %q: %s %q, want a problem", tt.accept, ctype, rec.Body.String())
			continue
		}
		if p.Type != httplimit.ProblemTypeQuotaExceeded || p.Title == "" || p.Status != 429 ||
			len(p.Violated) != 1 || p.Violated[0] != "default" {
			t.Errorf("Accept %q: problem %+v", tt.accept, p)
		}
	}
}

// TestPartitionKey: with WithPartitionKey each RateLimit item carries pk,
// a 12-byte keyed hash that is the same for a key whichever instance (with
// the same secret) answers, differs between keys, is the tier's for a
// limit the tier shares, and never holds the key.
func TestPartitionKey(t *testing.T) {
	const cfg = `
default_tier: free
tiers:
  free:
    limits:
      minute: {rate: 10, period: 1m}
      all: {rate: 1000, period: 1m, scope: tier}
`
	pk := regexp.MustCompile(`"free\.(minute|all)";r=\d+;t=\d+;pk=:([A-Za-z0-9+/=]+):`)
	backends(t, func(t *testing.T, rdb redis.Scripter) {
		l := limiterFrom(t, rdb, cfg)
		secret := []byte("shared by every instance")
		a := httplimit.New(l, httplimit.WithPartitionKey(secret), httplimit.WithKey(httplimit.Header("X-Api-Key")))(hello)
		b := httplimit.New(l, httplimit.WithPartitionKey(secret), httplimit.WithKey(httplimit.Header("X-Api-Key")))(hello)
		other := httplimit.New(l, httplimit.WithPartitionKey([]byte("another secret")), httplimit.WithKey(httplimit.Header("X-Api-Key")))(hello)
		keys := func(h http.Handler, key string) map[string]string {
			rec := do(h, request{header: http.Header{"X-Api-Key": {key}}})
			v := rec.Header().Get("RateLimit")
			got := map[string]string{}
			for _, m := range pk.FindAllStringSubmatch(v, -1) {
				raw, err := base64.StdEncoding.DecodeString(m[2])
				if err != nil || len(raw) != 12 || strings.Contains(v, key) {
					t.Errorf("RateLimit %q: pk %q is not 12 bytes of hash", v, m[2])
				}
				got[m[1]] = m[2]
			}
			if len(got) != 2 {
				t.Errorf("RateLimit %q: want a pk on both items", v)
			}
			return got
		}
		alice1, alice2, bob := keys(a, "alice-secret-key"), keys(b, "alice-secret-key"), keys(a, "bob-secret-key")
		if alice1["minute"] != alice2["minute"] || alice1["all"] != alice2["all"] {
			t.Errorf("one key, two instances: %v and %v", alice1, alice2)
		}
		if alice1["minute"] == bob["minute"] {
			t.Errorf("two keys share a per-client pk: %v", alice1)
		}
		if alice1["all"] != bob["all"] || alice1["all"] == alice1["minute"] {
			t.Errorf("the tier's shared limit: alice %v, bob %v; want one pk for the tier", alice1, bob)
		}
		if keys(other, "alice-secret-key")["minute"] == alice1["minute"] {
			t.Errorf("another secret gives the same pk")
		}
		// No option, no pk.
		rec := do(httplimit.New(l, httplimit.WithKey(httplimit.Header("X-Api-Key")), httplimit.WithPartitionKey(nil))(hello),
			request{header: http.Header{"X-Api-Key": {"carol"}}})
		if strings.Contains(rec.Header().Get("RateLimit"), "pk=") {
			t.Errorf("pk without WithPartitionKey: %s", rec.Header().Get("RateLimit"))
		}
	})
}
