package tiers_test

import (
	"errors"
	"testing"

	"github.com/distributedratelimiter/ratelimit/tiers"
)

// Parse names a line for every syntax error, within the file: yaml.v3 omits it for line 1 and for errors with no mark.
func TestParseErrorsNameALine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		line int
	}{
		{"tiers: a: b\n", 1},            // a syntax error on line 1: no line
		{"tiers:\n  free: {}\n\x00", 3}, // a control character: no line, on any line
		{"tiers:\n  free: *nope\n", 2},  // an unknown anchor: no line, on any line
		{"tiers: [", 1},                 // reported on line 2 of a 1-line file
	} {
		_, err := tiers.Parse("f.yaml", []byte(tc.in))
		var ce *tiers.ConfigError
		if !errors.As(err, &ce) || ce.Line != tc.line {
			t.Errorf("Parse(%q): %v; want an error on line %d", tc.in, err, tc.line)
		}
	}
}
