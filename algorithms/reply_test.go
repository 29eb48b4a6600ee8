package algorithms

import (
	"math"
	"testing"
	"time"
)

func TestUsToDurationSaturates(t *testing.T) {
	tests := []struct {
		us   int64
		want time.Duration
	}{
		{0, 0},
		{1500, 1500 * time.Microsecond},
		{math.MaxInt64 / 1000, time.Duration(math.MaxInt64/1000) * time.Microsecond},
		{math.MaxInt64/1000 + 1, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := usToDuration(tt.us); got != tt.want {
			t.Errorf("usToDuration(%d) = %v, want %v", tt.us, got, tt.want)
		}
	}
}
