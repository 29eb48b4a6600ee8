package tiers

import (
	"reflect"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// TestOverrideLimits is a table of tiers and overrides, and the limits, in
// check order, that a client with the override is checked against.
func TestOverrideLimits(t *testing.T) {
	sec := Client("second", ratelimit.PerSecond(5))
	day := Client("day", ratelimit.Per(1000, 24*time.Hour))
	all := Shared("all", ratelimit.PerSecond(100))
	gcraSec := sec.WithAlgorithm(algorithms.GCRA)
	bigSec := Client("second", ratelimit.PerSecond(50))
	hour := Client("hour", ratelimit.PerHour(300))
	tests := []struct {
		name       string
		base, over []Limit
		want       []Limit
	}{
		{"replace one", []Limit{sec, day}, []Limit{bigSec}, []Limit{bigSec, day}},
		{"replace keeps the tier's order", []Limit{sec, day}, []Limit{day, bigSec}, []Limit{bigSec, day}},
		{"add one after the tier's", []Limit{sec}, []Limit{hour}, []Limit{sec, hour}},
		{"replace and add", []Limit{sec, day}, []Limit{hour, bigSec}, []Limit{bigSec, day, hour}},
		{"inherit the replaced algorithm", []Limit{gcraSec}, []Limit{bigSec}, []Limit{bigSec.WithAlgorithm(algorithms.GCRA)}},
		{"own algorithm wins", []Limit{gcraSec}, []Limit{bigSec.WithAlgorithm(algorithms.TokenBucket)},
			[]Limit{bigSec.WithAlgorithm(algorithms.TokenBucket)}},
		{"shared limits stay, last", []Limit{all, sec}, []Limit{bigSec}, []Limit{bigSec, all}},
		{"added before shared", []Limit{all, sec}, []Limit{hour}, []Limit{sec, hour, all}},
		{"only shared in the tier", []Limit{all}, []Limit{hour}, []Limit{hour, all}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := overrideLimits(tt.base, tt.over)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("overrideLimits(%v, %v)\n = %v\nwant %v", tt.base, tt.over, got, tt.want)
			}
		})
	}
}
