package httplimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// Header field names of draft-ietf-httpapi-ratelimit-headers, and
// Retry-After.
const (
	HeaderRateLimitPolicy = "RateLimit-Policy"
	HeaderRateLimit       = "RateLimit"
	HeaderRetryAfter      = "Retry-After"
)

// setRateLimitHeaders writes the RateLimit-Policy field (every limit of
// the tier) and the RateLimit field (every limit checked) for res.
//
// A limit's policy is named after its tier, or "<tier>.<limit>" when the
// tier has several limits. Its quota q is the limit's Rate and its window
// w the Period in seconds; a period that is not whole seconds is rounded
// up and q scaled to match. r is the limit's remaining tokens and t the
// seconds, rounded up, until it is full again.
func setRateLimitHeaders(h http.Header, res tiers.Result) {
	if len(res.Limits) == 0 {
		return
	}
	var policy, state strings.Builder
	for i, l := range res.Limits {
		name := res.Tier
		if len(res.Limits) > 1 {
			name += "." + l.Name
		}
		q, w := quota(l.Limit)
		if i > 0 {
			policy.WriteString(", ")
		}
		writeName(&policy, name)
		policy.WriteString(";q=")
		policy.WriteString(strconv.FormatInt(q, 10))
		policy.WriteString(";w=")
		policy.WriteString(strconv.FormatInt(w, 10))

		if !l.Checked {
			continue
		}
		if state.Len() > 0 {
			state.WriteString(", ")
		}
		writeName(&state, name)
		state.WriteString(";r=")
		state.WriteString(strconv.Itoa(max(l.Decision.Remaining, 0)))
		state.WriteString(";t=")
		state.WriteString(strconv.FormatInt(ceilSeconds(l.Decision.ResetAfter), 10))
	}
	h.Set(HeaderRateLimitPolicy, policy.String())
	if state.Len() > 0 {
		h.Set(HeaderRateLimit, state.String())
	}
}

// writeName writes name as a Structured Field String. Tier and limit
// names hold only letters, digits, '_' and '-', but escape anyway.
func writeName(b *strings.Builder, name string) {
	b.WriteByte('"')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// quota returns a limit's quota and window in whole seconds.
func quota(l ratelimit.Limit) (q, w int64) {
	w = max(ceilSeconds(l.Period), 1)
	if time.Duration(w)*time.Second == l.Period {
		return int64(l.Rate), w
	}
	q = int64(float64(l.Rate) * float64(time.Duration(w)*time.Second) / float64(l.Period))
	return max(q, 1), w
}

// ceilSeconds returns d in whole seconds, rounded up; 0 for d <= 0. It
// cannot overflow: the longest Duration (which limiters return when a wait
// saturates) is 9223372037 s.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
