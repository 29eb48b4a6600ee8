package ratelimit

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConstructors(t *testing.T) {
	tests := []struct {
		name string
		got  Limit
		want Limit
	}{
		{"PerSecond", PerSecond(5), Limit{Rate: 5, Period: time.Second, Burst: 5}},
		{"PerMinute", PerMinute(60), Limit{Rate: 60, Period: time.Minute, Burst: 60}},
		{"PerHour", PerHour(1000), Limit{Rate: 1000, Period: time.Hour, Burst: 1000}},
		{"Per", Per(3, 90*time.Second), Limit{Rate: 3, Period: 90 * time.Second, Burst: 3}},
		{"WithBurst", PerSecond(5).WithBurst(20), Limit{Rate: 5, Period: time.Second, Burst: 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %+v, want %+v", tt.got, tt.want)
			}
		})
	}

	// WithBurst returns a copy and leaves the receiver alone.
	base := PerSecond(5)
	_ = base.WithBurst(99)
	if base.Burst != 5 {
		t.Fatalf("WithBurst changed its receiver: burst %d", base.Burst)
	}
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		name string
		lim  Limit
		// field is "" for a valid limit, else a word the error must contain.
		field string
	}{
		{"per second", PerSecond(100), ""},
		{"per minute", PerMinute(1), ""},
		{"per hour", PerHour(3600), ""},
		{"90 seconds", Per(7, 90*time.Second), ""},
		{"burst above rate", PerSecond(10).WithBurst(50), ""},
		{"burst below rate", PerSecond(10).WithBurst(1), ""},
		{"max rate and burst", Per(MaxRate, time.Second), ""},
		{"min period", Per(1, MinPeriod), ""},
		{"max period", Per(1, MaxPeriod), ""},
		{"whole microseconds", Per(1, 1500*time.Microsecond), ""},
		{"max rate and burst at max period", Limit{Rate: MaxRate, Period: MaxPeriod, Burst: MaxRate}, ""},
		{"refill exactly MaxRefill", Per(1, 365*24*time.Hour).WithBurst(100), ""},
		{"max burst at min period", Per(1, MinPeriod).WithBurst(MaxRate), ""}, // refills in 34.8 years
		{"refill exactly MaxRefill, large burst", Per(1_000_000_000, 365*24*time.Hour).WithBurst(100_000_000_000), ""},

		{"zero value", Limit{}, "rate"},
		{"zero rate", Limit{Rate: 0, Period: time.Second, Burst: 1}, "rate"},
		{"negative rate", Limit{Rate: -1, Period: time.Second, Burst: 1}, "rate"},
		{"rate above max", Limit{Rate: MaxRate + 1, Period: time.Second, Burst: 1}, "rate"},
		{"zero period", Limit{Rate: 1, Burst: 1}, "period"},
		{"negative period", Limit{Rate: 1, Period: -time.Second, Burst: 1}, "period"},
		{"period below min", Per(1, MinPeriod-time.Microsecond), "period"},
		{"period above max", Per(1, MaxPeriod+time.Microsecond), "period"},
		{"fractional microseconds", Per(1, time.Second+500*time.Nanosecond), "microseconds"},
		{"zero burst", PerSecond(1).WithBurst(0), "burst"},
		{"negative burst", PerSecond(1).WithBurst(-3), "burst"},
		{"burst above max", PerSecond(1).WithBurst(MaxRate + 1), "burst"},
		// Issue 11: limits whose scripts overflowed. The error names the
		// derived quantity and the fields that make it.
		{"refill beyond MaxRefill", Per(1, 366*24*time.Hour).WithBurst(1_000_000), "refill time (burst × period / rate) 1.003e+06 years"},
		{"max burst at 1/s", PerSecond(1).WithBurst(1 << 40), "lower burst 1099511627776 or period 1s, or raise rate 1"},
		{"max burst at max period", Per(1, MaxPeriod).WithBurst(MaxRate), "exceeds the maximum 100 years"},
		{"refill 31.5 ms over MaxRefill", Per(1_000_000_000, 365*24*time.Hour).WithBurst(100_000_000_001), "refill time"},
		{"refill 100 µs over MaxRefill", Per(1, 365*24*time.Hour+time.Microsecond).WithBurst(100), "refill time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lim.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(%v) = %v, want nil", tt.lim, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("Validate(%v) = %v, want an error matching ErrInvalidLimit", tt.lim, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate(%v) = %q, want it to name %q", tt.lim, err, tt.field)
			}
		})
	}
}

// TestLimitValidateFields checks that Validate's problems are
// *LimitErrors naming their fields, one per field at fault.
func TestLimitValidateFields(t *testing.T) {
	tests := []struct {
		lim    Limit
		fields []string
	}{
		{PerSecond(0), []string{"rate", "burst"}},
		{Limit{}, []string{"rate", "period", "burst"}},
		{Per(5, time.Second+1), []string{"period"}},
		{PerSecond(5).WithBurst(MaxRate + 1), []string{"burst"}},
		{PerSecond(1).WithBurst(1 << 40), []string{""}}, // the refill time
	}
	for _, tt := range tests {
		err := tt.lim.Validate()
		var got []string
		list := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		}
		for _, e := range list {
			le, ok := e.(*LimitError)
			if !ok || !errors.Is(e, ErrInvalidLimit) {
				t.Fatalf("Validate(%v): problem %v (%T) is not a *LimitError matching ErrInvalidLimit", tt.lim, e, e)
			}
			if le.Field != "" && !strings.HasPrefix(le.Error(), "ratelimit: invalid limit: "+le.Field+" ") {
				t.Errorf("Validate(%v): %q does not name field %q", tt.lim, le, le.Field)
			}
			got = append(got, le.Field)
		}
		if !slices.Equal(got, tt.fields) {
			t.Errorf("Validate(%v) names fields %q, want %q", tt.lim, got, tt.fields)
		}
	}
}

func TestLimitValidateN(t *testing.T) {
	lim := PerSecond(10).WithBurst(20)
	tests := []struct {
		n  int
		ok bool
	}{
		{-1, false},
		{0, false},
		{1, true},
		{10, true},
		{20, true},
		{21, false},
		{MaxRate, false},
	}
	for _, tt := range tests {
		err := lim.ValidateN(tt.n)
		if tt.ok && err != nil {
			t.Errorf("ValidateN(%d) = %v, want nil", tt.n, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidN) {
			t.Errorf("ValidateN(%d) = %v, want an error matching ErrInvalidN", tt.n, err)
		}
		if !tt.ok && errors.Is(err, ErrInvalidLimit) {
			t.Errorf("ValidateN(%d) = %v also matches ErrInvalidLimit", tt.n, err)
		}
	}
}

func TestLimitInterval(t *testing.T) {
	tests := []struct {
		lim  Limit
		want time.Duration
	}{
		{PerSecond(100), 10 * time.Millisecond},
		{PerSecond(1), time.Second},
		{PerMinute(1), time.Minute},
		{PerMinute(60), time.Second},
		{PerHour(3600), time.Second},
		{Per(3, time.Second), 333333334 * time.Nanosecond}, // rounded up
		{Per(2, 90*time.Second), 45 * time.Second},
		{Per(2_000_000, time.Millisecond), time.Nanosecond}, // 0.5 ns, rounded up: never zero
		{Limit{}, 0},
		{Limit{Rate: -5, Period: time.Second}, 0},
	}
	for _, tt := range tests {
		if got := tt.lim.Interval(); got != tt.want {
			t.Errorf("%v.Interval() = %v, want %v", tt.lim, got, tt.want)
		}
	}
}

func TestLimitDurationFor(t *testing.T) {
	tests := []struct {
		lim  Limit
		n    int
		want time.Duration
	}{
		{PerSecond(100), 5, 50 * time.Millisecond},
		{Per(3, time.Second), 3, time.Second},
		{Per(3, time.Second), 2, 666666667 * time.Nanosecond},
		{Per(2_000_000, time.Millisecond), 3, 2 * time.Nanosecond}, // 1.5 ns
		{PerSecond(10), 0, 0},
		{PerSecond(10), -1, 0},
		{Limit{}, 1, 0},
		// Exact where float64 would round: 2^53 + 1 ns.
		{Per(1, time.Second), 9007199, 9007199 * time.Second},
		{Per(3, 3*(1<<53+1)), 1, 1<<53 + 1},
		// The refill time of the largest valid limits fits.
		{Per(1, 365*24*time.Hour).WithBurst(100), 100, MaxRefill},
		{Per(1, MinPeriod).WithBurst(MaxRate), MaxRate, MaxRate * MinPeriod},
		// Saturates instead of overflowing (n beyond the burst, or an
		// invalid limit).
		{Per(1, MaxPeriod), math.MaxInt, math.MaxInt64},
		{Per(1, time.Nanosecond), math.MaxInt, math.MaxInt64},
		{Per(3, time.Nanosecond), math.MaxInt, math.MaxInt64/3 + 1},
		{Per(MaxRate, MaxPeriod), math.MaxInt, math.MaxInt64},
		{Limit{Rate: 1, Period: math.MaxInt64}, 2, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := tt.lim.DurationFor(tt.n); got != tt.want {
			t.Errorf("%v.DurationFor(%d) = %v, want %v", tt.lim, tt.n, got, tt.want)
		}
	}
}

func TestLimitPerSecondRate(t *testing.T) {
	tests := []struct {
		lim  Limit
		want float64
	}{
		{PerSecond(100), 100},
		{PerMinute(60), 1},
		{Per(1, 2*time.Second), 0.5},
		{Per(5, 100*time.Millisecond), 50},
		{Limit{}, 0},
		{Limit{Rate: 1, Period: -time.Second}, 0},
	}
	for _, tt := range tests {
		if got := tt.lim.PerSecondRate(); got != tt.want {
			t.Errorf("%v.PerSecondRate() = %v, want %v", tt.lim, got, tt.want)
		}
	}
}

func TestLimitString(t *testing.T) {
	tests := []struct {
		lim  Limit
		want string
	}{
		{PerSecond(100).WithBurst(200), "100/1s burst 200"},
		{PerMinute(5), "5/1m0s burst 5"},
		{Per(3, 90*time.Second), "3/1m30s burst 3"},
		{Per(1, 1500*time.Microsecond), "1/1.5ms burst 1"},
		{Limit{}, "0/0s burst 0"},
	}
	for _, tt := range tests {
		if got := tt.lim.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestSourceString(t *testing.T) {
	tests := []struct {
		s    Source
		want string
	}{
		{SourceRedis, "redis"},
		{SourceLocal, "local"},
		{SourceFallback, "fallback"},
		{Source(200), "unknown"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Source(%d).String() = %q, want %q", tt.s, got, tt.want)
		}
	}
	var zero Decision
	if zero.Allowed || zero.Source != SourceRedis {
		t.Errorf("zero Decision = %+v, want a denial", zero)
	}
}
