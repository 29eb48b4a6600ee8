package algorithms

import (
	"context"
	"errors"
	"math"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// The fuzz tests run as regression tests over their seeds and the corpus
// in testdata/fuzz on every go test. To fuzz:
//
//	go test -run='^$' -fuzz=FuzzParseReply -fuzztime=30s ./algorithms
//	go test -run='^$' -fuzz=FuzzLimitValidate -fuzztime=30s ./algorithms

// replyDecoder turns fuzz bytes into a reply value of the shapes go-redis
// produces for a script's reply: int64, string, nil and nested []any.
type replyDecoder struct{ b []byte }

func (d *replyDecoder) byte() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// value decodes one value: a tag byte, then its payload.
func (d *replyDecoder) value(depth int) any {
	switch tag := d.byte(); tag % 6 {
	case 0: // a small int64, the common case
		return int64(int8(d.byte()))
	case 1: // any int64, big-endian
		var v int64
		for range 8 {
			v = v<<8 | int64(d.byte())
		}
		return v
	case 2: // a string of up to 31 bytes
		n := min(int(d.byte()%32), len(d.b))
		s := string(d.b[:n])
		d.b = d.b[n:]
		return s
	case 3:
		return nil
	case 4: // an array of up to 7 values
		n := int(d.byte() % 8)
		if depth > 3 {
			n = 0
		}
		a := make([]any, 0, n)
		for range n {
			a = append(a, d.value(depth+1))
		}
		return a
	default: // another type go-redis may return: a float or a bool
		if tag%2 == 0 {
			return float64(int8(d.byte()))
		}
		return d.byte()%2 == 0
	}
}

// wantReply is what parseReply must return for v: four integers (int64,
// or decimal strings, as go-redis's Int64Slice reads them), none negative.
func wantReply(v any) (reply, bool) {
	var r reply
	a, ok := v.([]any)
	if !ok || len(a) != len(r) {
		return r, false
	}
	for i, e := range a {
		switch e := e.(type) {
		case int64:
			r[i] = e
		case string:
			n, err := strconv.ParseInt(e, 10, 64)
			if err != nil {
				return r, false
			}
			r[i] = n
		default:
			return r, false
		}
		if r[i] < 0 {
			return r, false
		}
	}
	return r, true
}

// ceilDiv returns a × b / c rounded up, for a, b >= 0 and c > 0, or
// math.MaxInt64 if that does not fit.
func ceilDiv(a, b, c int64) int64 {
	q, r := new(big.Int).QuoRem(new(big.Int).Mul(big.NewInt(a), big.NewInt(b)), big.NewInt(c), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

// wantDuration is the Duration a reply field of us microseconds must
// become: us µs, or the largest Duration when that does not fit (the
// library saturates rather than overflow).
func wantDuration(us int64) time.Duration {
	ns := new(big.Int).Mul(big.NewInt(us), big.NewInt(int64(time.Microsecond)))
	if !ns.IsInt64() {
		return math.MaxInt64
	}
	return time.Duration(ns.Int64())
}

// errFuzz is the error a fuzzed Redis call fails with.
var errFuzz = errors.New("fuzz: connection reset")

// FuzzParseReply feeds parseReply, and every entry point that parses a
// script's reply, values of arbitrary shape: parseReply accepts exactly
// four non-negative integers, reports anything else as ErrBadReply and a
// failed call as its own error, and nothing panics.
func FuzzParseReply(f *testing.F) {
	f.Add(false, []byte{4, 4, 0, 1, 0, 2, 0, 0, 0, 100})                         // {1, 2, 0, 100}: well formed
	f.Add(false, []byte{4, 4, 0, 0, 0, 0, 0, 0xff, 0, 5})                        // a negative field
	f.Add(false, []byte{4, 4, 2, 1, '1', 0, 0, 0, 0, 2, 2, '1', '0'})            // integers as strings
	f.Add(false, []byte{4, 4, 2, 1, 'x', 0, 0, 0, 0, 0, 0})                      // a non-numeric string
	f.Add(false, []byte{4, 3, 0, 1, 0, 0, 0, 0})                                 // three fields
	f.Add(false, []byte{4, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})                     // five fields
	f.Add(false, []byte{4, 4, 3, 0, 0, 0, 0, 0, 0})                              // nil in the array
	f.Add(false, []byte{4, 4, 4, 2, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0})               // a nested array
	f.Add(false, []byte{2, 2, 'O', 'K'})                                         // a status reply
	f.Add(false, []byte{3})                                                      // nil
	f.Add(false, []byte{1, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})      // a bare integer
	f.Add(false, []byte{4, 4, 0, 2, 0, 0, 0, 0, 0, 0})                           // allowed flag 2
	f.Add(false, []byte{4, 4, 1, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // MaxInt64 fields
		1, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(false, []byte{4, 4, 5, 1, 0, 0, 0, 0, 0, 0}) // a float
	f.Add(true, []byte{})                              // the call failed
	lim := ratelimit.PerSecond(10)
	f.Fuzz(func(t *testing.T, failed bool, data []byte) {
		dec := &replyDecoder{b: data}
		val := dec.value(0)
		var callErr error
		if failed {
			callErr = errFuzz
		}
		cmd := redis.NewCmd(context.Background())
		if failed {
			cmd.SetErr(callErr)
		} else {
			cmd.SetVal(val)
		}

		r, err := parseReply(cmd)
		want, ok := wantReply(val)
		switch {
		case failed:
			if err != errFuzz {
				t.Fatalf("failed call: error %v, want the call's own error", err)
			}
		case ok:
			if err != nil || r != want {
				t.Fatalf("reply %#v: %v, %v; want %v", val, r, err, want)
			}
		default:
			if !errors.Is(err, ratelimit.ErrBadReply) {
				t.Fatalf("reply %#v: %v, %v; want an error matching ErrBadReply", val, r, err)
			}
		}

		// Every entry point that parses a reply: a failure matches
		// ErrStore, a malformed reply also ErrBadReply, and a well-formed
		// one is read field by field.
		rdb := &replyScripter{val: val, err: callErr}
		ctx := context.Background()
		for _, alg := range All {
			// No own timeout: a loaded fuzzing process must not time out.
			l, err := NewLimiter(rdb, lim, WithAlgorithm(alg), WithCircuitBreaker(false), WithTimeout(ratelimit.NoBound))
			if err != nil {
				t.Fatal(err)
			}
			d, err := l.Allow(ctx, "k")
			switch {
			case failed:
				if !errors.Is(err, errFuzz) || !errors.Is(err, ratelimit.ErrStore) || d.Allowed {
					t.Fatalf("%s: failed call: %+v, %v; want a denial and the call's error in a StoreError", alg.Name(), d, err)
				}
			case ok && want[0] <= 1:
				if err != nil || d.Allowed != (want[0] == 1) || d.Remaining != int(want[1]) ||
					d.Source != ratelimit.SourceRedis || d.Limit != lim ||
					d.Allowed && d.RetryAfter != 0 || !d.Allowed && d.RetryAfter != wantDuration(want[2]) ||
					d.ResetAfter != wantDuration(want[3]) {
					t.Fatalf("%s: reply %v: %+v, %v", alg.Name(), want, d, err)
				}
			default:
				if !errors.Is(err, ratelimit.ErrBadReply) || !errors.Is(err, ratelimit.ErrStore) || d.Allowed {
					t.Fatalf("%s: reply %#v: %+v, %v; want a denial and an error matching ErrBadReply and ErrStore", alg.Name(), val, d, err)
				}
			}
			err = l.RefundN(ctx, "k", 1)
			switch {
			case failed:
				if !errors.Is(err, errFuzz) || !errors.Is(err, ratelimit.ErrStore) {
					t.Fatalf("%s: RefundN: failed call: %v", alg.Name(), err)
				}
			case ok:
				if err != nil {
					t.Fatalf("%s: RefundN: reply %v: %v", alg.Name(), want, err)
				}
			default:
				if !errors.Is(err, ratelimit.ErrBadReply) || !errors.Is(err, ratelimit.ErrStore) {
					t.Fatalf("%s: RefundN: reply %#v: %v; want ErrBadReply and ErrStore", alg.Name(), val, err)
				}
			}
		}
		g, err := TakeUpTo(ctx, rdb, "k", lim, 2)
		switch {
		case failed:
			if !errors.Is(err, errFuzz) {
				t.Fatalf("TakeUpTo: failed call: %v", err)
			}
		case ok && want[0] <= 2:
			if err != nil || g.Granted != int(want[0]) || g.Remaining != int(want[1]) {
				t.Fatalf("TakeUpTo: reply %v: %+v, %v", want, g, err)
			}
		default:
			if !errors.Is(err, ratelimit.ErrBadReply) {
				t.Fatalf("TakeUpTo: reply %#v: %+v, %v; want ErrBadReply", val, g, err)
			}
		}
		n, err := ReturnN(ctx, rdb, "k", lim, 1)
		switch {
		case failed:
			if !errors.Is(err, errFuzz) {
				t.Fatalf("ReturnN: failed call: %v", err)
			}
		case ok:
			if err != nil || n != int(want[0]) {
				t.Fatalf("ReturnN: reply %v: %d, %v", want, n, err)
			}
		default:
			if !errors.Is(err, ratelimit.ErrBadReply) {
				t.Fatalf("ReturnN: reply %#v: %d, %v; want ErrBadReply", val, n, err)
			}
		}
	})
}

// FuzzLimitValidate checks Limit.Validate and what depends on it for
// arbitrary fields: Validate never panics and wraps ErrInvalidLimit; a
// valid limit is accepted by NewLimiter, has an Interval of Period/Rate
// and a refill time of Burst × Period / Rate (rounded up to a ns) at most
// MaxRefill, a positive rate per second, and a Share that is valid for any
// number of instances (but for its refill time); an invalid one is refused
// by NewLimiter.
func FuzzLimitValidate(f *testing.F) {
	f.Add(int64(100), int64(time.Second), int64(100), 4)
	f.Add(int64(1), int64(time.Millisecond), int64(1), 1)
	f.Add(int64(ratelimit.MaxRate), int64(ratelimit.MaxPeriod), int64(ratelimit.MaxRate), 1<<30)
	f.Add(int64(ratelimit.MaxRate+1), int64(time.Second), int64(1), 2)
	f.Add(int64(5), int64(time.Millisecond-1), int64(5), 0)
	f.Add(int64(5), int64(time.Second+1), int64(5), -3)
	f.Add(int64(0), int64(time.Second), int64(1), 1)
	f.Add(int64(1), int64(time.Second), int64(0), 1)
	f.Add(int64(-1), int64(-time.Second), int64(-1), -1)
	f.Add(int64(3), int64(ratelimit.MaxPeriod+time.Microsecond), int64(3), 3)
	f.Add(int64(2_000_000), int64(time.Millisecond), int64(7), 3) // more than one token per ns
	f.Add(int64(1), int64(366*24*time.Hour), int64(1_000_000), 1) // issue 11: overflowed in the scripts
	f.Add(int64(1), int64(time.Second), int64(1<<40), 1)          // issue 11: PEXPIRE failed
	f.Add(int64(1), int64(365*24*time.Hour), int64(100), 7)       // refills in exactly MaxRefill
	f.Add(int64(3), int64(ratelimit.MaxPeriod), int64(299), 2)    // Share(2) refills in 2 × 99.7 years
	rdb := &replyScripter{val: []any{int64(1), int64(0), int64(0), int64(0)}}
	f.Fuzz(func(t *testing.T, rate, period, burst int64, instances int) {
		lim := ratelimit.Limit{Rate: int(rate), Period: time.Duration(period), Burst: int(burst)}
		_ = lim.String()
		err := lim.Validate()
		_, nerr := NewLimiter(rdb, lim)
		if err != nil {
			if !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Fatalf("%+v: Validate error %v does not match ErrInvalidLimit", lim, err)
			}
			if !errors.Is(nerr, ratelimit.ErrInvalidLimit) {
				t.Fatalf("%+v: invalid (%v), but NewLimiter: %v", lim, err, nerr)
			}
			return
		}
		if nerr != nil {
			t.Fatalf("%+v: valid, but NewLimiter: %v", lim, nerr)
		}
		if lim.Rate <= 0 || lim.Burst <= 0 || lim.Rate > ratelimit.MaxRate || lim.Burst > ratelimit.MaxRate ||
			lim.Period < ratelimit.MinPeriod || lim.Period > ratelimit.MaxPeriod || lim.Period%time.Microsecond != 0 {
			t.Fatalf("%+v: Validate accepted a limit outside its bounds", lim)
		}
		// Interval is Period/Rate rounded up to a ns; the time to refill
		// the burst, Burst × Period / Rate, is at most MaxRefill.
		if iv, want := lim.Interval(), ceilDiv(int64(lim.Period), 1, int64(lim.Rate)); iv <= 0 || int64(iv) != want {
			t.Fatalf("%+v: Interval %v, want Period/Rate = %dns (rounded up)", lim, iv, want)
		}
		if d, want := lim.DurationFor(lim.Burst), ceilDiv(int64(lim.Period), int64(lim.Burst), int64(lim.Rate)); d <= 0 ||
			d > ratelimit.MaxRefill || int64(d) != want {
			t.Fatalf("%+v: DurationFor(Burst) = %v, want %dns, at most MaxRefill", lim, d, want)
		}
		if d := lim.DurationFor(instances); instances > 0 && d <= 0 || instances <= 0 && d != 0 {
			t.Fatalf("%+v: DurationFor(%d) = %v", lim, instances, d)
		}
		if r := lim.PerSecondRate(); r <= 0 {
			t.Fatalf("%+v: PerSecondRate %v, want positive", lim, r)
		}
		if err := lim.ValidateN(lim.Burst); err != nil {
			t.Fatalf("%+v: ValidateN(Burst): %v", lim, err)
		}
		if err := lim.ValidateN(lim.Burst + 1); !errors.Is(err, ratelimit.ErrInvalidN) {
			t.Fatalf("%+v: ValidateN(Burst+1): %v, want ErrInvalidN", lim, err)
		}
		s := lim.Share(instances)
		if err := s.Validate(); err != nil {
			// Share rounds rate and burst down separately, so its refill
			// time may reach twice the limit's, or one period, and so
			// exceed MaxRefill; nothing else may be invalid.
			if d := s.DurationFor(s.Burst); d <= ratelimit.MaxRefill || d > max(2*lim.DurationFor(lim.Burst), lim.Period) {
				t.Fatalf("%+v: Share(%d) = %+v is invalid: %v", lim, instances, s, err)
			}
		}
		if s.Period != lim.Period || s.Rate > lim.Rate || s.Burst > lim.Burst {
			t.Fatalf("%+v: Share(%d) = %+v exceeds the limit", lim, instances, s)
		}
		if instances <= 1 && s != lim {
			t.Fatalf("%+v: Share(%d) = %+v, want the limit itself", lim, instances, s)
		}
		if instances > 1 && (s.Rate != max(lim.Rate/instances, 1) || s.Burst != max(lim.Burst/instances, 1)) {
			t.Fatalf("%+v: Share(%d) = %+v, want rate and burst divided", lim, instances, s)
		}
	})
}
