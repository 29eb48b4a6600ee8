package httplimit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"math/big"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// Header field names of draft-ietf-httpapi-ratelimit-headers, and
// Retry-After.
const (
	HeaderRateLimitPolicy = "RateLimit-Policy"
	HeaderRateLimit       = "RateLimit"
	HeaderRetryAfter      = "Retry-After"
)

// maxSFInteger is the largest Integer a structured field can carry (RFC
// 9651: at most 15 digits). Larger values are sent as this.
const maxSFInteger = 999_999_999_999_999

// A policy is one limit as the header fields describe it: one item of
// RateLimit-Policy and, once checked, of RateLimit.
type policy struct {
	name  string               // the policy's name
	limit ratelimit.Limit      // its rate, period and burst
	alg   algorithms.Algorithm // what runs it; nil: a token bucket
	// partition is what the limit counts in: "c:" and the client key, or
	// "t:" and the tier's name for a limit the tier shares.
	partition string
	// checked reports whether d is the limit's decision for this request.
	checked bool
	d       ratelimit.Decision
}

// policiesOf returns the policies of a tiers check of key: one per limit,
// named "<tier>.<limit>", after prefix and a dot if prefix is not empty.
func policiesOf(res tiers.Result, key, prefix string) []policy {
	ps := make([]policy, len(res.Limits))
	for i, l := range res.Limits {
		name := res.Tier + "." + l.Name
		if prefix != "" {
			name = prefix + "." + name
		}
		part := "c:" + key
		if l.Scope == tiers.PerTier {
			part = "t:" + res.Tier
		}
		ps[i] = policy{
			name:      name,
			limit:     l.Limit,
			alg:       l.Algorithm,
			partition: part,
			checked:   l.Checked,
			d:         l.Decision,
		}
	}
	return ps
}

// pkLen is how many bytes of the HMAC a partition key keeps: 96 bits.
const pkLen = 12

// partitionKey returns the pk of partition under secret: a structured
// field Byte Sequence of the first pkLen bytes of its HMAC-SHA256.
func partitionKey(secret []byte, partition string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(partition))
	return ":" + base64.StdEncoding.EncodeToString(mac.Sum(nil)[:pkLen]) + ":"
}

// setRateLimitHeaders writes the RateLimit-Policy field (every policy)
// and the RateLimit field for ps, as the package documentation describes.
// On a refusal the RateLimit field lists only the limits that denied. A
// non-empty pkSecret adds each partition's pk. It returns the largest t
// it wrote, in seconds.
func setRateLimitHeaders(h http.Header, ps []policy, refused bool, pkSecret []byte) (maxT int64) {
	var policyField, state strings.Builder
	for _, p := range ps {
		if p.limit.Validate() != nil {
			continue // a limiter that does not say what it enforces
		}
		q, w := quota(p.limit, p.alg)
		if policyField.Len() > 0 {
			policyField.WriteString(", ")
		}
		writeName(&policyField, p.name)
		policyField.WriteString(";q=")
		policyField.WriteString(strconv.FormatInt(q, 10))
		policyField.WriteString(";w=")
		policyField.WriteString(strconv.FormatInt(w, 10))

		// A fallback decision (Redis unreachable) says nothing about the
		// shared limit.
		if !p.checked || p.d.Source == ratelimit.SourceFallback || refused && p.d.Allowed {
			continue
		}
		if state.Len() > 0 {
			state.WriteString(", ")
		}
		writeName(&state, p.name)
		state.WriteString(";r=")
		state.WriteString(strconv.FormatInt(clampSF(int64(max(p.d.Remaining, 0))), 10))
		if t, ok := untilMore(p); ok {
			s := clampSF(max(ceilSeconds(t), 1))
			maxT = max(maxT, s)
			state.WriteString(";t=")
			state.WriteString(strconv.FormatInt(s, 10))
		}
		if len(pkSecret) > 0 && p.partition != "" {
			state.WriteString(";pk=")
			state.WriteString(partitionKey(pkSecret, p.partition))
		}
	}
	appendField(h, HeaderRateLimitPolicy, policyField.String())
	appendField(h, HeaderRateLimit, state.String())
	return maxT
}

// appendField adds items, a list of structured field items, to the list
// field name of h: after the items an outer middleware wrote there, as one
// field line.
func appendField(h http.Header, name, items string) {
	if items == "" {
		return
	}
	if prev := h.Values(name); len(prev) > 0 {
		items = strings.Join(prev, ", ") + ", " + items
	}
	h.Set(name, items)
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

// isWindow reports whether alg counts requests in windows of Period
// (fixed or sliding) rather than refilling a bucket.
func isWindow(alg algorithms.Algorithm) bool {
	if alg == nil {
		return false
	}
	switch alg.Name() {
	case algorithms.FixedWindow.Name(), algorithms.SlidingWindow.Name(), calendarWindow:
		return true
	}
	return false
}

// calendarWindow is the name of algorithms.CalendarWindow, whose windows
// are calendar days, weeks or months: their length varies (a day of a
// change to or from daylight-saving time has 23 or 25 hours), so more
// quota comes exactly at the window's end, its ResetAfter.
var calendarWindow = algorithms.CalendarWindow{}.Name()

// quota returns the q and w of a limit run by alg (nil: a token bucket).
//
// A window algorithm admits at most Burst per window of Period: q is
// Burst and w the Period. A bucket (token bucket, GCRA) admits at most
// Burst at once and refills them in Burst × Period / Rate: q is Burst and
// w that time. w is in whole seconds, at least 1: when the exact window is
// not, w is rounded up and q scaled to the same rate, rounded down (but
// never below Burst).
func quota(l ratelimit.Limit, alg algorithms.Algorithm) (q, w int64) {
	burst, rate, period := uint64(l.Burst), uint64(l.Rate), uint64(l.Period)
	window := period
	if !isWindow(alg) {
		var ok bool
		if window, ok = mulDivCeil(burst, period, rate); !ok {
			// Over 584 years: whole seconds, and no scaling to speak of.
			n := new(big.Int).Mul(new(big.Int).SetUint64(burst), new(big.Int).SetUint64(period))
			d := new(big.Int).Mul(new(big.Int).SetUint64(rate), big.NewInt(int64(time.Second)))
			n.Add(n, d).Sub(n, big.NewInt(1)).Quo(n, d)
			if !n.IsInt64() || n.Int64() > maxSFInteger {
				return clampSF(int64(l.Burst)), maxSFInteger
			}
			return clampSF(int64(l.Burst)), n.Int64()
		}
	}
	const sec = uint64(time.Second)
	ws := window / sec
	if window%sec != 0 {
		ws++
	}
	ws = max(ws, 1)
	if ws > maxSFInteger {
		return clampSF(int64(l.Burst)), maxSFInteger
	}
	if ws*sec == window {
		return clampSF(int64(l.Burst)), int64(ws)
	}
	// ws*sec < window + 1 s: no overflow below maxSFInteger seconds.
	num := burst
	if !isWindow(alg) {
		num = rate
	}
	sq, ok := mulDivFloor(num, ws*sec, period)
	if !ok || sq > maxSFInteger {
		return maxSFInteger, int64(ws)
	}
	return clampSF(max(int64(sq), int64(l.Burst))), int64(ws)
}

// untilMore returns how long until p's limit has more quota than its
// decision left (the t parameter), and false if it has all its quota.
//
//   - A denial: its RetryAfter, the time until one token is available.
//   - A bucket: the time until the next whole token, from the time until
//     the bucket is full less that of the tokens missing after the next,
//     and at most one token's interval.
//   - A fixed window: the end of the window.
//   - A sliding window: the estimate decays as the previous window's
//     weight does, which the decision does not tell; the result is the
//     time by which a token is certainly back: the end of the window plus
//     the time it takes the current window's count (at most Burst −
//     Remaining) to free one token, and no later than the time until the
//     estimate is zero. It is exact when the previous window was empty.
func untilMore(p policy) (time.Duration, bool) {
	d, l := p.d, p.limit
	if !d.Allowed {
		return d.RetryAfter, true
	}
	if d.Remaining >= l.Burst {
		return 0, false
	}
	if !isWindow(p.alg) {
		interval := l.Interval()
		if d.ResetAfter == math.MaxInt64 { // saturated: the next token is at most an interval away
			return interval, true
		}
		later, ok := mulDivFloor(uint64(l.Burst-d.Remaining-1), uint64(l.Period), uint64(l.Rate))
		if !ok || later > math.MaxInt64 {
			return interval, true
		}
		return min(max(d.ResetAfter-time.Duration(later), 0), interval), true
	}
	if p.alg.Name() == calendarWindow {
		return d.ResetAfter, true
	}
	if p.alg.Name() == algorithms.FixedWindow.Name() || d.ResetAfter <= l.Period {
		return min(d.ResetAfter, l.Period), true
	}
	free := l.Period / time.Duration(l.Burst-d.Remaining)
	if free*time.Duration(l.Burst-d.Remaining) != l.Period {
		free++
	}
	return min(d.ResetAfter-l.Period+free, d.ResetAfter), true
}

// mulDivFloor returns a × b / c rounded down, and false if it does not
// fit in 64 bits. c must not be 0.
func mulDivFloor(a, b, c uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, c)
	return q, true
}

// mulDivCeil returns a × b / c rounded up, and false if it does not fit
// in 64 bits. c must not be 0.
func mulDivCeil(a, b, c uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return 0, false
	}
	q, rem := bits.Div64(hi, lo, c)
	if rem != 0 {
		if q == math.MaxUint64 {
			return 0, false
		}
		q++
	}
	return q, true
}

// clampSF bounds n to what a structured-field Integer can carry.
func clampSF(n int64) int64 { return min(n, maxSFInteger) }

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
