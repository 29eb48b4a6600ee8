package tiers_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

func TestLoadFileExample(t *testing.T) {
	cfg, err := tiers.LoadFile("testdata/tiers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := tiers.Config{
		DefaultTier: "free",
		Tiers: []tiers.Tier{
			{Name: "free", Limits: []tiers.Limit{
				tiers.Client("second", ratelimit.PerSecond(5).WithBurst(10)).WithAlgorithm(algorithms.GCRA),
				tiers.Client("day", ratelimit.Per(1000, 24*time.Hour)).WithAlgorithm(algorithms.FixedWindow),
				tiers.Shared("all-free", ratelimit.PerSecond(2000)).WithAlgorithm(algorithms.TokenBucket),
			}},
			{Name: "pro", Limits: []tiers.Limit{
				tiers.Client("second", ratelimit.PerSecond(100).WithBurst(200)).WithAlgorithm(algorithms.GCRA),
				tiers.Client("day", ratelimit.Per(100000, 24*time.Hour)).WithAlgorithm(algorithms.FixedWindow),
			}},
		},
		Clients: map[string]string{"pro-key-1": "pro", "pro-key-2": "pro"},
		Overrides: []tiers.Override{{Key: "acme", Tier: "pro", Limits: []tiers.Limit{
			tiers.Client("second", ratelimit.PerSecond(500).WithBurst(1000)),
		}}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("LoadFile:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := tiers.Parse("min.yaml", []byte(`
tiers:
  t:
    limits:
      l: {rate: 7, period: 90s}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Tiers[0].Limits[0]
	want := tiers.Limit{Name: "l", Budget: ratelimit.Limit{Rate: 7, Period: 90 * time.Second, Burst: 7}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("limit = %+v, want %+v (burst defaults to rate, scope to client)", got, want)
	}
}

// TestParseErrors is a table of broken files. Each must fail with an error
// naming the file, the line and the field at fault.
func TestParseErrors(t *testing.T) {
	const head = "tiers:\n  free:\n    limits:\n" // lines 1-3
	checkParseErrors(t, false, []parseError{
		{"unknown top-level field", head + "      s: {rate: 1, period: 1s}\nrates: 3\n", 5, "rates", `unknown field "rates"`},
		{"misspelt top-level field", "teirs:\n  free: {}\n", 1, "teirs", `unknown field "teirs"`},
		{"unknown limit field", head + "      second:\n        rate: 5\n        period: 1s\n        brust: 10\n",
			7, "tiers.free.limits.second.brust", `unknown field "brust"`},
		{"unknown tier field", "tiers:\n  free:\n    limit: {}\n", 3, "tiers.free.limit", "unknown field"},
		{"duplicate tier", head + "      s: {rate: 1, period: 1s}\n  free:\n    limits:\n      s: {rate: 2, period: 1s}\n",
			5, "tiers.free", "duplicate key \"free\" (first defined at line 2)"},
		{"duplicate limit", head + "      s: {rate: 1, period: 1s}\n      s: {rate: 2, period: 1s}\n",
			5, "tiers.free.limits.s", "duplicate key"},
		{"zero rate", head + "      s:\n        rate: 0\n        period: 1s\n", 5, "tiers.free.limits.s.rate", "must be positive, got 0"},
		{"negative rate", head + "      s:\n        period: 1s\n        rate: -3\n", 6, "tiers.free.limits.s.rate", "must be positive, got -3"},
		{"zero burst", head + "      s:\n        rate: 5\n        period: 1s\n        burst: 0\n", 7, "tiers.free.limits.s.burst", "must be positive"},
		{"zero period", head + "      s:\n        rate: 5\n        period: 0s\n", 6, "tiers.free.limits.s.period", "must be positive"},
		{"negative period", head + "      s:\n        rate: 5\n        period: -1m\n", 6, "tiers.free.limits.s.period", "must be positive"},
		{"unparsable period", head + "      s:\n        rate: 5\n        period: 1 second\n", 6, "tiers.free.limits.s.period", `got "1 second"`},
		{"period without unit", head + "      s:\n        rate: 5\n        period: 60\n", 6, "tiers.free.limits.s.period", "with a unit"},
		{"rate not a number", head + "      s:\n        rate: five\n        period: 1s\n", 5, "tiers.free.limits.s.rate", "whole number"},
		{"fractional rate", head + "      s:\n        rate: 2.5\n        period: 1s\n", 5, "tiers.free.limits.s.rate", "whole number"},
		// yaml.v3 reads 010 as YAML 1.1's octal 8; YAML 1.2 as 10.
		{"rate with a leading zero", head + "      s:\n        rate: 010\n        period: 1s\n", 5, "tiers.free.limits.s.rate", "leading zero"},
		{"burst with a leading zero", head + "      s: {rate: 5, period: 1s, burst: 0100}\n", 4, "tiers.free.limits.s.burst", "leading zero"},
		{"missing rate", head + "      s:\n        period: 1s\n", 5, "tiers.free.limits.s.rate", "missing required field rate"},
		{"missing period", head + "      s:\n        rate: 1\n", 5, "tiers.free.limits.s.period", "missing required field period"},
		{"refill beyond the maximum", head + "      s: {rate: 1, period: 366d, burst: 1000000}\n", 4, "tiers.free.limits.s", "refill time (burst × period / rate)"},
		{"unknown scope", head + "      s: {rate: 1, period: 1s, scope: global}\n", 4, "tiers.free.limits.s.scope", `unknown scope "global"`},
		{"unknown algorithm", head + "      s: {rate: 1, period: 1s, algorithm: leaky}\n", 4, "tiers.free.limits.s.algorithm", `unknown algorithm "leaky"`},
		{"lease not a bool", head + "      s: {rate: 1, period: 1s, lease: maybe}\n", 4, "tiers.free.limits.s.lease", "true or false"},
		{"bad limit name", head + "      per.second: {rate: 1, period: 1s}\n", 4, "tiers.free.limits.per.second", "limit name"},
		{"bad tier name", "tiers:\n  free tier:\n    limits:\n      s: {rate: 1, period: 1s}\n", 2, "tiers.free tier", "tier name"},
		{"tier without limits", "tiers:\n  free:\n    limits: {}\n", 3, "tiers.free.limits", "at least one limit"},
		{"no tiers", "default_tier: free\n", 1, "tiers", "at least one tier"},
		{"unknown default tier", "default_tier: gold\n" + head + "      s: {rate: 1, period: 1s}\n", 1, "default_tier", `unknown tier "gold"`},
		{"client of unknown tier", head + "      s: {rate: 1, period: 1s}\nclients:\n  k1: gold\n", 6, "clients.k1", `unknown tier "gold"`},
		{"override of unknown tier", head + "      s: {rate: 1, period: 1s}\noverrides:\n  acme:\n    tier: gold\n    limits:\n      s: {rate: 2, period: 1s}\n",
			7, "overrides.acme.tier", `unknown tier "gold"`},
		{"override of a shared limit", head + "      all: {rate: 9, period: 1s, scope: tier}\noverrides:\n  acme:\n    tier: free\n    limits:\n      all: {rate: 2, period: 1s}\n",
			9, "overrides.acme.limits.all", "shared by the tier"},
		{"override with tier scope", head + "      s: {rate: 1, period: 1s}\noverrides:\n  acme:\n    tier: free\n    limits:\n      x: {rate: 2, period: 1s, scope: tier}\n",
			9, "overrides.acme.limits.x.scope", "scope must be"},
		{"limits not a mapping", head + "      - rate: 1\n", 4, "tiers.free.limits", "must be a mapping"},
		{"unclosed flow mapping", head + "      s: {rate: 1, period: 1s\n", 4, "", "invalid YAML"},
		{"unclosed flow sequence", "tiers:\n  a: [1, 2\n", 2, "", "invalid YAML"},
		{"tab indentation", "tiers:\n\t- 1\n", 2, "", "invalid YAML"},
		{"two documents", head + "      s: {rate: 1, period: 1s}\n---\ntiers: {}\n", 5, "", "one YAML document"},
	})
}

// parseError is a broken file and where its error must point.
type parseError struct {
	name  string
	yaml  string
	line  int
	field string
	msg   string // a substring of the message
}

// checkParseErrors parses each file as broken.yaml and checks that it fails
// with ErrInvalidConfig, its first *ConfigError at the file, line and field
// given, with a message that holds msg, and a text that starts with the
// position; with single, that it reports that one problem only.
func checkParseErrors(t *testing.T, single bool, tests []parseError) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tiers.Parse("broken.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded; want an error at line %d", tt.line)
			}
			if !errors.Is(err, tiers.ErrInvalidConfig) {
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
			var ce *tiers.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v holds no *ConfigError", err)
			}
			if ce.File != "broken.yaml" || ce.Line != tt.line || ce.Field != tt.field {
				t.Errorf("first error at %s:%d field %q, want broken.yaml:%d field %q (error: %v)",
					ce.File, ce.Line, ce.Field, tt.line, tt.field, err)
			}
			if !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", ce.Msg, tt.msg)
			}
			if n := strings.Count(err.Error(), "\n") + 1; single && n != 1 {
				t.Errorf("%d problems reported, want 1: %v", n, err)
			}
			prefix := "broken.yaml:" + itoa(tt.line) + ":"
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error text %q does not start with %q", err.Error(), prefix)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	_, err := tiers.Parse("two.yaml", []byte(`tiers:
  free:
    limits:
      s: {rate: 0, period: 1s}
      d: {rate: 5, period: soon}
`))
	var lines []int
	for _, e := range flatten(err) {
		var ce *tiers.ConfigError
		if errors.As(e, &ce) {
			lines = append(lines, ce.Line)
		}
	}
	if !reflect.DeepEqual(lines, []int{4, 5}) {
		t.Errorf("errors at lines %v, want [4 5] (err: %v)", lines, err)
	}
	// A zero rate is an invalid limit, and says so.
	if !errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Errorf("error %v does not match ratelimit.ErrInvalidLimit", err)
	}
}

func TestLoadFileErrorNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("tiers:\n  free:\n    limits:\n      s: {rate: 1, period: 1x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := tiers.LoadFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":4:") {
		t.Errorf("LoadFile error = %v, want it to start with %s:4:", err, path)
	}
	if _, err := tiers.LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file = %v, want os.ErrNotExist", err)
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func itoa(n int) string { return strconv.Itoa(n) }

// aliasBomb returns the config of issue 11 item 2: one tier defines limits
// &L with n limits, and n-1 more tiers say {limits: *L}. Expanded, it
// would hold n × n limits.
func aliasBomb(n int) string {
	var b strings.Builder
	b.WriteString("tiers:\n  t0:\n    limits: &L\n")
	for i := range n {
		fmt.Fprintf(&b, "      l%d: {rate: 1, period: 1s}\n", i)
	}
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  t%d: {limits: *L}\n", i)
	}
	return b.String()
}

// allocated returns the bytes that f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestParseRefusesAliases (issue 11 item 2): a 53 KiB file whose aliases
// would expand to 1,000,000 limits (1.24 GB allocated) is refused, at the
// line of its first alias, having allocated a small multiple of its size
// (a bound 60 times below what the expansion took);
// so is a merge key; an anchor nobody refers to is harmless.
func TestParseRefusesAliases(t *testing.T) {
	bomb := aliasBomb(1000)
	var err error
	if n := allocated(func() { _, err = tiers.Parse("bomb.yaml", []byte(bomb)) }); n > 400*uint64(len(bomb)) {
		t.Errorf("Parse of %d bytes allocated %d bytes", len(bomb), n)
	}
	errs := flatten(err)
	var first, last *tiers.ConfigError
	if len(errs) != 101 || !errors.As(errs[0], &first) || !errors.As(errs[100], &last) {
		t.Fatalf("Parse: %d errors, want 100 and a count of the rest: %.300v", len(errs), err)
	}
	if first.File != "bomb.yaml" || first.Line != 1004 || first.Column != 16 ||
		!strings.Contains(first.Msg, "YAML aliases are not supported") || !strings.Contains(first.Msg, "*L") ||
		!strings.Contains(first.Msg, "anchored at line 3") {
		t.Errorf("first error %v, want the alias *L at bomb.yaml:1004:16", first)
	}
	if last.Line != 1104 || last.Msg != "899 more problems not shown" {
		t.Errorf("last error %v, want a count of the 899 other aliases at line 1104", last)
	}

	const head = "tiers:\n  free:\n    limits:\n      s: &s {rate: 1, period: 1s}\n"
	for _, tt := range []struct {
		name, yaml string
		line, col  int
	}{
		{"merge key", head + "      d:\n        <<: *s\n        period: 1d\n", 6, 13},
		{"alias of a scalar", "default_tier: &d free\n" + head + "clients: {k: *d}\n", 6, 14},
		{"alias of the whole config", "a: &a {b: 1}\nc: *a\n", 2, 4},
	} {
		_, err := tiers.Parse("a.yaml", []byte(tt.yaml))
		var ce *tiers.ConfigError
		if !errors.As(err, &ce) || ce.Line != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, "aliases") {
			t.Errorf("%s: %v, want an alias refused at a.yaml:%d:%d", tt.name, err, tt.line, tt.col)
		}
	}
	if _, err := tiers.Parse("a.yaml", []byte(head)); err != nil {
		t.Errorf("an anchor without an alias: %v", err)
	}
}

// TestParseBoundsHostileConfigs checks the other bounds of Parse: the size
// of the file, the length of a key (whose fields are named after it, so
// that a long key over many fields cost its length each time: 1.67 GB for
// a file of 159 KiB) and the number of problems listed. Each is refused
// with an error naming the file and a line, without allocating more than a
// small multiple of the input.
func TestParseBoundsHostileConfigs(t *testing.T) {
	valid := "tiers: {t: {limits: {s: {rate: 1, period: 1s}}}}\n"
	pad := func(s string, size int) string { return s + strings.Repeat("#", size-len(s)-1) + "\n" }
	if _, err := tiers.Parse("max.yaml", []byte(pad(valid, tiers.MaxConfigSize))); err != nil {
		t.Errorf("a file of MaxConfigSize bytes: %v", err)
	}
	_, err := tiers.Parse("big.yaml", []byte(pad(valid, tiers.MaxConfigSize+1)))
	var ce *tiers.ConfigError
	if !errors.As(err, &ce) || ce.File != "big.yaml" || ce.Line != 2 || !strings.Contains(ce.Msg, "MaxConfigSize") {
		t.Errorf("a file of MaxConfigSize+1 bytes: %v, want it refused at line 2", err)
	}

	var long strings.Builder
	long.WriteString(valid + "overrides:\n  ? " + strings.Repeat("k", 100_000) + "\n  : limits:\n")
	for i := range 4000 {
		fmt.Fprintf(&long, "      l%d: {rate: 1, period: 1s}\n", i)
	}
	if n := allocated(func() { _, err = tiers.Parse("long.yaml", []byte(long.String())) }); n > 400*uint64(long.Len()) {
		t.Errorf("Parse of %d bytes allocated %d bytes", long.Len(), n)
	}
	if !errors.As(err, &ce) || ce.Line != 3 || ce.Column != 5 || ce.Field != "overrides" ||
		!strings.Contains(ce.Msg, "a key of 100000 bytes") || len(err.Error()) > 200 {
		t.Errorf("a key of 100,000 bytes: %.300v, want it refused at line 3, without repeating it", err)
	}
	// The longest valid client key is read.
	key := strings.Repeat("k", ratelimit.MaxKeyLen)
	if cfg, err := tiers.Parse("key.yaml", []byte(valid+"clients: {"+key+": t}\n")); err != nil || cfg.Clients[key] != "t" {
		t.Errorf("a client key of MaxKeyLen bytes: %v", err)
	}

	var bad strings.Builder
	bad.WriteString("tiers:\n")
	for i := range 1000 {
		fmt.Fprintf(&bad, "  t%d: {limits: {s: {rate: 0, period: 1s}}}\n", i)
	}
	_, err = tiers.Parse("bad.yaml", []byte(bad.String()))
	errs := flatten(err)
	if len(errs) != 101 || !errors.As(errs[100], &ce) || ce.Line != 102 || ce.Msg != "900 more problems not shown" {
		t.Errorf("1,000 problems: %d errors, the last %v; want 100 and a count of the rest", len(errs), ce)
	}

	deep := strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000)
	if _, err := tiers.Parse("deep.yaml", []byte(deep)); !errors.As(err, &ce) || ce.Line != 1 || !strings.Contains(ce.Msg, "depth") {
		t.Errorf("20,000 nested sequences: %v, want a depth error", err)
	}
}

// TestLoadFileReadsAtMostMaxConfigSize: LoadFile refuses a file larger
// than MaxConfigSize, after reading no more of it than that: of
// /dev/zero, which never ends.
func TestLoadFileReadsAtMostMaxConfigSize(t *testing.T) {
	const path = "/dev/zero"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	var ce *tiers.ConfigError
	if _, err := tiers.LoadFile(path); !errors.As(err, &ce) || ce.File != path || !strings.Contains(ce.Msg, "MaxConfigSize") {
		t.Errorf("LoadFile(%s): %v, want it refused as too large", path, err)
	}
}
