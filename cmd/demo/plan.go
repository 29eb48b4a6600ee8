package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/distributedratelimiter/ratelimit/tiers"
)

// Shape of the simulated demand.
const (
	steadyShare   = 0.8  // clients under their limit ask for this share of it
	crowdOver     = 1.5  // the crowd asks for this multiple of a tier-wide limit
	maxCrowd      = 200  // clients in the crowd, at most
	maxListed     = 3    // listed clients simulated per tier, at most
	maxClientRate = 2000 // requests/s of one client, at most
	// maxChecks bounds the limit checks per second of all clients together
	// (a request checks each limit of its tier): direct checks on
	// miniredis cost about 0.3 ms of CPU each.
	maxChecks = 1000
)

// heavyShares are the demand of the clients over their limit, as
// multiples of it.
var heavyShares = []float64{5, 7.5, 10}

// A client is one simulated API client.
type client struct {
	key    string
	ask    string        // tier passed to Check; "" resolves it from the key
	tier   int           // index in plan.tiers
	rate   float64       // requests per second, all instances together
	limits []tiers.Limit // the limits that apply to it, in check order
}

// A plan is the workload: the same in every mode.
type plan struct {
	tiers   []string // names of the tiers that have clients, config order
	clients []client
	lines   [][2]string // tier and what its clients do, for the header
}

// makePlan derives the workload from cfg for runs of duration d. The
// default tier (else the first) gets three clients far over their
// per-client limit and a crowd of clients under it, large enough to go
// over the tier-wide limit if the tier has one; every other tier gets up
// to maxListed of the clients the config lists for it (or one made-up
// client), at steadyShare of their limit.
func makePlan(cfg tiers.Config, d time.Duration) plan {
	var p plan
	taken := func(key string) bool {
		if _, ok := cfg.Clients[key]; ok {
			return true
		}
		return slices.ContainsFunc(cfg.Overrides, func(o tiers.Override) bool { return o.Key == key })
	}
	busy := cfg.DefaultTier
	if busy == "" {
		busy = cfg.Tiers[0].Name
	}
	for _, t := range cfg.Tiers {
		ask := t.Name
		if t.Name == cfg.DefaultTier {
			ask = "" // made-up keys resolve to the default tier
		}
		// add adds a client at share of its per-client limit, if key
		// resolves to t.
		add := func(key, ask string, share float64) *client {
			name, limits := resolve(cfg, key, ask)
			if name != t.Name {
				return nil
			}
			if len(p.tiers) == 0 || p.tiers[len(p.tiers)-1] != t.Name {
				p.tiers = append(p.tiers, t.Name)
			}
			p.clients = append(p.clients, client{key: key, ask: ask, tier: len(p.tiers) - 1, limits: limits,
				rate: min(share*refRate(limits, tiers.PerClient, d), maxClientRate)})
			return &p.clients[len(p.clients)-1]
		}
		if t.Name == busy {
			var rates []string
			for i, share := range heavyShares {
				if c := add(freeKey(t.Name+"-heavy-", i+1, taken), ask, share); c != nil {
					rates = append(rates, fmt.Sprintf("%.0f", c.rate))
				}
			}
			p.lines = append(p.lines, [2]string{t.Name, fmt.Sprintf("%d heavy clients at %s× their limit: %s req/s",
				len(rates), joinShares(heavyShares), strings.Join(rates, ", "))})
			p.lines = append(p.lines, [2]string{t.Name, crowd(t, d, func(i int) *client {
				return add(freeKey(t.Name+"-user-", i, taken), ask, steadyShare)
			})})
			continue
		}
		var keys []string
		for k, n := range cfg.Clients {
			if n == t.Name {
				keys = append(keys, k)
			}
		}
		for _, o := range cfg.Overrides {
			if !slices.Contains(keys, o.Key) {
				keys = append(keys, o.Key)
			}
		}
		slices.Sort(keys)
		var named, rates []string
		for _, k := range keys {
			if len(named) == maxListed {
				break
			}
			if c := add(k, "", steadyShare); c != nil {
				named, rates = append(named, k), append(rates, fmt.Sprintf("%.0f", c.rate))
			}
		}
		if len(named) == 0 {
			if c := add(freeKey(t.Name+"-", 1, taken), t.Name, steadyShare); c != nil {
				named, rates = append(named, c.key), append(rates, fmt.Sprintf("%.0f", c.rate))
			}
		}
		switch len(named) {
		case 0:
		case 1:
			p.lines = append(p.lines, [2]string{t.Name, fmt.Sprintf("%s at %.1f× its limit: %s req/s",
				named[0], steadyShare, rates[0])})
		default:
			p.lines = append(p.lines, [2]string{t.Name, fmt.Sprintf("%s at %.1f× their limits: %s req/s",
				strings.Join(named, ", "), steadyShare, strings.Join(rates, ", "))})
		}
	}
	p.scale()
	return p
}

// crowd adds the crowd of tier t through add and describes it.
func crowd(t tiers.Tier, d time.Duration, add func(i int) *client) string {
	perUser := steadyShare * refRate(t.Limits, tiers.PerClient, d)
	shared := refRate(t.Limits, tiers.PerTier, d)
	n := 10
	if shared > 0 && perUser > 0 {
		n = int(math.Ceil(crowdOver * shared / perUser))
	}
	n = min(max(n, 1), maxCrowd)
	var total float64
	added := 0
	for i := range n {
		if c := add(i + 1); c != nil {
			total += c.rate
			added++
		}
	}
	s := fmt.Sprintf("%d more clients at %.1f× their limit: %.0f req/s together", added, steadyShare, total)
	if shared > 0 {
		s += fmt.Sprintf(", %.1f× the tier-wide limit", total/shared)
	}
	return s
}

// scale slows every client down alike so that all together make at most
// maxChecks limit checks per second, and says so.
func (p *plan) scale() {
	var checks float64
	for _, c := range p.clients {
		checks += c.rate * float64(len(c.limits))
	}
	if checks <= maxChecks {
		return
	}
	f := maxChecks / checks
	for i := range p.clients {
		p.clients[i].rate *= f
	}
	p.lines = append(p.lines, [2]string{"", fmt.Sprintf("(all demand × %.2f, to stay within %d limit checks/s)", f, maxChecks)})
}

// refRate is the rate, in requests per second, at which the limits of
// scope bind over a run of d: for each limit the larger of its rate and
// its burst spread over d (a daily quota binds only through its burst),
// and the smallest of those. It is 0 when no limit has that scope.
func refRate(limits []tiers.Limit, scope tiers.Scope, d time.Duration) float64 {
	r := 0.0
	for _, l := range limits {
		if l.Scope != scope {
			continue
		}
		x := max(l.Budget.PerSecondRate(), float64(l.Budget.Burst)/d.Seconds())
		if r == 0 || x < r {
			r = x
		}
	}
	if r == 0 && scope == tiers.PerClient {
		// Only tier-wide limits: a client's share of a tenth of one.
		return refRate(limits, tiers.PerTier, d) / 10
	}
	return r
}

// freeKey returns prefix followed by the smallest number from i on that
// makes a key the config does not list.
func freeKey(prefix string, i int, taken func(string) bool) string {
	for {
		k := fmt.Sprintf("%s%d", prefix, i)
		if !taken(k) {
			return k
		}
		i++
	}
}

func joinShares(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0")
	}
	return strings.Join(s, ", ")
}
