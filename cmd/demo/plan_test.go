package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit/tiers"
)

func TestPlanEmbedded(t *testing.T) {
	cfg, name, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, "embedded") || !anyLease(cfg) {
		t.Errorf("embedded config %q: lease %v", name, anyLease(cfg))
	}
	p := makePlan(cfg, 10*time.Second)
	if len(p.tiers) != 2 || p.tiers[0] != "free" || p.tiers[1] != "pro" {
		t.Fatalf("tiers = %q", p.tiers)
	}
	rates := map[string]float64{}
	crowd, crowdRate := 0, 0.0
	for _, c := range p.clients {
		if strings.HasPrefix(c.key, "free-user-") {
			crowd++
			crowdRate += c.rate
			continue
		}
		rates[c.key] = c.rate
	}
	// free: 5/s burst 10 per client, all free clients 100/s.
	want := map[string]float64{"free-heavy-1": 25, "free-heavy-2": 37.5, "free-heavy-3": 50, "pro-1": 400}
	for k, r := range want {
		if math.Abs(rates[k]-r) > 1e-9 {
			t.Errorf("rate of %s = %v, want %v", k, rates[k], r)
		}
	}
	if crowd != 38 || math.Abs(crowdRate-152) > 1e-9 { // ceil(1.5 × 100 / 4)
		t.Errorf("crowd = %d clients at %v/s, want 38 at 152/s", crowd, crowdRate)
	}
	for _, c := range p.clients {
		if c.ask != "" || len(c.limits) == 0 {
			t.Errorf("client %+v: want resolved from its key, with limits", c)
		}
	}
	if len(p.lines) != 3 || !strings.Contains(p.lines[1][1], "1.5× the tier-wide limit") {
		t.Errorf("lines = %q", p.lines)
	}
}

const testConfig = `
tiers:
  basic:
    limits:
      second: {rate: 10, period: 1s}
      day: {rate: 1000, period: 1d, algorithm: fixed_window}
  gold:
    limits:
      second: {rate: 100, period: 1s, burst: 200}
      everyone: {rate: 1000, period: 1s, scope: tier}
clients:
  g1: gold
overrides:
  acme:
    tier: gold
    limits:
      second: {rate: 400, period: 1s, lease: true}
      minute: {rate: 20000, period: 1m}
`

func TestResolve(t *testing.T) {
	cfg, err := tiers.Parse("test.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	names := func(ls []tiers.Limit) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.Name+"="+l.Budget.String())
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		key, ask, tier, limits string
	}{
		{"g1", "", "gold", "second=100/1s burst 200 everyone=1000/1s burst 1000"},
		{"g1", "basic", "basic", "second=10/1s burst 10 day=1000/24h0m0s burst 1000"},
		{"acme", "basic", "gold", "second=400/1s burst 400 minute=20000/1m0s burst 20000 everyone=1000/1s burst 1000"},
		{"nobody", "", "", ""}, // no default tier
		{"nobody", "gold", "gold", "second=100/1s burst 200 everyone=1000/1s burst 1000"},
	}
	for _, tt := range tests {
		tier, ls := resolve(cfg, tt.key, tt.ask)
		if tier != tt.tier || names(ls) != tt.limits {
			t.Errorf("resolve(%q, %q) = %q, %q; want %q, %q", tt.key, tt.ask, tier, names(ls), tt.tier, tt.limits)
		}
	}

	// No default tier: the first tier gets the heavy clients and the
	// crowd, asked for by name; gold gets its listed clients.
	p := makePlan(cfg, 10*time.Second)
	if len(p.tiers) != 2 || p.tiers[0] != "basic" {
		t.Fatalf("tiers = %q", p.tiers)
	}
	var keys []string
	checks := 0.0
	for _, c := range p.clients {
		checks += c.rate * float64(len(c.limits))
		if c.tier == 1 {
			keys = append(keys, c.key)
		}
		if c.tier == 0 && (c.ask != "basic" || c.rate <= 0) {
			t.Errorf("basic client %+v: want asked by name", c)
		}
	}
	// Scaled down to maxChecks limit checks per second, and said so.
	if math.Abs(checks-maxChecks) > 1e-6 || !strings.Contains(p.lines[len(p.lines)-1][1], "limit checks/s") {
		t.Errorf("%v checks/s, lines %q; want %d and a note", checks, p.lines, maxChecks)
	}
	if strings.Join(keys, ",") != "acme,g1" {
		t.Errorf("gold clients = %q, want acme,g1", keys)
	}
	if got := withoutLease(cfg); anyLease(got) || !anyLease(cfg) {
		t.Errorf("withoutLease: lease left %v, original lease %v", anyLease(got), anyLease(cfg))
	}
}
