package tiers_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/distributedratelimiter/ratelimit/tiers"
)

// FuzzParseConfig feeds Parse arbitrary bytes. It runs as a regression
// test over its seeds and testdata/fuzz on every go test; to fuzz:
//
//	go test -run='^$' -fuzz=FuzzParseConfig -fuzztime=30s ./tiers
//
// Parse never panics and is deterministic. A config it accepts is valid.
// Every error it returns matches ErrInvalidConfig and is made of
// ConfigErrors that name the file, in file order, and a line within the
// file (its last line + 1 for a problem at the end), except the problems
// that have none (see lineless).
func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("testdata/tiers.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"# only a comment\n",
		"---\n",
		"tiers:\n  free:\n    limits:\n      second: {rate: 5, period: 1s}\n",
		"tiers:\n  free:\n    limits:\n      second: {rate: 5, period: 1s, burst: 0, scope: tier, algorithm: gcra, lease: true}\ndefault_tier: free\nclients: {k: free}\noverrides:\n  k:\n    limits:\n      second: {rate: 9, period: 1d}\n",
		"tiers:\n  free:\n    limits:\n      s: {rate: 5, period: 1s}\n  free:\n    limits: {}\n",             // duplicate tier
		"tiers:\n  free:\n    limits:\n      s: {rate: -5, period: 0s, burst: x, scope: no, algorithm: no}\n", // every field wrong
		"tiers:\n  free:\n    limits:\n      s: {rate: 5, period: 1s}\ndefault_tier: nope\nclients: {k: nope}\noverrides:\n  k:\n    tier: nope\n    limits: {s: {rate: 1, period: 1s, scope: tier}}\n",
		"tiers: &t\n  free:\n    limits: &l\n      s: {rate: 5, period: 1s}\n  pro:\n    limits: *l\n", // aliases
		"tiers:\n  free:\n    limits:\n      s: {rate: 99999999999999999999, period: 9999999d}\n",
		"tiers: [\n",
		"tiers:\n\tfree: 1\n",
		"a: 1\n---\nb: 2\n",
		"\x00",
		"*a\n",
		"- 1\n- 2\n",
		"tiers: {free: {limits: {s: {rate: 1, period: 1.5ms}}}}",
		"tiers: {free: {limits: {s: {rate: 1, period: 1ns}}}}",
		"tiers: {free: {limits: {s: {rate: 1, period: 1s, unknown: 1}}}}",
		"{? [a]: b}",
		"tiers: {free: {limits: {s: !!int {rate: 1}}}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.yaml"
		cfg, err := tiers.Parse(name, data)
		_, err2 := tiers.Parse(name, data)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse is not deterministic: %v, then %v", err, err2)
		}
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate refuses: %v", verr)
			}
			return
		}
		if !errors.Is(err, tiers.ErrInvalidConfig) {
			t.Fatalf("error %v does not match ErrInvalidConfig", err)
		}
		var list []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		} else {
			list = []error{err}
		}
		lines := yamlLines(data)
		last := 0
		for _, e := range list {
			var ce *tiers.ConfigError
			if !errors.As(e, &ce) || ce != e {
				t.Fatalf("error %v (%T) is not a *ConfigError", e, e)
			}
			if ce.File != name {
				t.Fatalf("error %v names file %q, want %q", ce, ce.File, name)
			}
			if ce.Line == 0 {
				if len(list) > 1 || !lineless(ce) {
					t.Fatalf("error %q names no line", ce)
				}
				continue
			}
			if ce.Line < 0 || ce.Line > lines+1 {
				t.Fatalf("error %q names line %d of a file of %d lines", ce, ce.Line, lines)
			}
			if ce.Line < last {
				t.Fatalf("errors out of file order: line %d after line %d in %v", ce.Line, last, err)
			}
			last = ce.Line
		}
	})
}

// yamlLines returns the number of lines of data as YAML counts them: it
// breaks lines at LF, CR LF, a lone CR, NEL, LS and PS.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}

// lineless reports whether e is the one problem that Parse reports without
// a line: an empty file. (go.yaml.in/yaml/v3 gives no position for errors
// on the first line, for control characters and for unknown anchors; Parse
// finds their lines itself.)
func lineless(e *tiers.ConfigError) bool {
	return e.Msg == "empty config file"
}
