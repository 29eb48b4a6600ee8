// Package limitertest is the conformance suite of the module's limiters,
// in the manner of testing/fstest.TestFS: [Run] puts a limiter that the
// caller builds on a real redis-server, and on a Redis Cluster, breaks
// them while goroutines keep calling, and checks what every limiter must
// do whatever its design:
//
//   - Redis killed and restarted empty on the same port: no call outlives
//     the limiter's wait, the failure policy decides what Redis cannot, and
//     Redis decides again soon after the restart;
//   - Redis stalled by CLIENT PAUSE and by DEBUG SLEEP, through a client
//     that honours context deadlines and one that does not: the same;
//   - SCRIPT FLUSH, before and after a restart: no call fails;
//   - a string at a limiter's Redis key: each call fails with an error
//     matching ratelimit.ErrStore that says WRONGTYPE, and the circuit
//     breaker stays closed;
//   - a Cluster of three masters with a replica each: keys on every master
//     admit exactly the burst, a slot moved under load (ASK, then MOVED)
//     loses no token and grants none twice, and after a master's failover
//     the limiter decides again from the state its replica had;
//   - no scenario leaves a goroutine behind once its cleanups have run
//     (goleak), and [Main] checks the same for a whole package.
//
// Bounds on time are correctness bounds, not speed targets: they hold on
// a loaded two-core machine under -race, and the measured figures are
// logged. What only one limiter does (a leasing limiter's counters, say)
// is checked by the limiter's own package in [Subject].Check.
//
// The package also holds [Clock], the settable clock the limiters' unit
// tests share. It imports neither limiter, so that the in-package tests of
// both can import it.
package limitertest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/faulttest"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// Limiter is what the suite calls: Allow takes one token of key.
type Limiter interface {
	Allow(ctx context.Context, key string) (ratelimit.Decision, error)
}

// closer is a limiter that has tokens to give back when it closes.
type closer interface{ Close(context.Context) error }

// Config is how a scenario wants a limiter set up.
type Config struct {
	// Variant is one of [Subject].Variants: the algorithm, named as the
	// limiter names it in its Redis keys (ratelimit.Keyspace.ClientKey).
	Variant string
	// Keyspace is the limiter's keyspace, unique to the scenario.
	Keyspace ratelimit.Keyspace
	// Timeout bounds one Redis call of the limiter.
	Timeout time.Duration
	// Policy is the failure policy.
	Policy ratelimit.FailurePolicy
	// Instances is how many instances the limiter is told share its limit;
	// zero keeps the limiter's default.
	Instances int
	// Counted is set where a scenario counts admissions exactly against
	// the burst: a limiter must not let tokens it took from Redis expire
	// unspent during the scenario.
	Counted bool
}

// Subject describes the limiter under test to [Run]. Its zero value is
// not usable: New is required.
type Subject struct {
	// Variants names the algorithms New can build, as Config.Variant. The
	// scenarios about scripts and keys (script flush, wrong key type,
	// Cluster) run every variant; the others run the first. Default: a
	// single "token_bucket".
	Variants []string
	// New returns a limiter of lim over rdb set up as c, or fails t. The
	// limiter must be released (closed, if it has a Close) when t ends.
	New func(t *testing.T, rdb redis.Scripter, lim ratelimit.Limit, c Config) Limiter
	// MaxWait is the longest a call may wait for Redis before the failure
	// policy decides. Default (zero): the Config.Timeout of the limiter.
	MaxWait time.Duration
	// Leases says that the limiter serves calls from tokens it took from
	// Redis ahead of time: its decisions while Redis answers may have
	// Source local, their Remaining is not Redis's, and calls while Redis
	// cannot answer may still be admitted from tokens it holds. Without
	// Leases, every decision while Redis answers has Source redis and
	// Redis's Remaining, and every call while Redis cannot answer is
	// decided by the failure policy.
	Leases bool
	// FailLocalShare returns the most a key of lim may be admitted at by
	// ratelimit.FailLocal in one of instances instances, while Redis
	// cannot answer. Default: lim.Share(instances).
	FailLocalShare func(lim ratelimit.Limit, instances int) ratelimit.Limit
	// Check, if set, runs the limiter's own checks at the end of a
	// scenario, once per limiter the scenario checked.
	Check func(t *testing.T, o Outcome)
}

// Scenario names a scenario of [Run], as [Outcome] reports it.
type Scenario string

// The scenarios of [Run].
const (
	// KillRestart kills Redis under load and restarts it empty.
	KillRestart Scenario = "KillRestart"
	// Stall stalls Redis under load with CLIENT PAUSE and DEBUG SLEEP.
	Stall Scenario = "Stall"
	// ScriptFlush empties the script cache, before and after a restart.
	ScriptFlush Scenario = "ScriptFlush"
	// WrongKeyType puts a string at a limiter's Redis keys.
	WrongKeyType Scenario = "WrongKeyType"
	// ClusterSlots spends keys on every master of a Cluster.
	ClusterSlots Scenario = "ClusterSlots"
	// ClusterMove moves a key's slot while the key is in use.
	ClusterMove Scenario = "ClusterMove"
	// ClusterFailover fails a key's master over to its replica.
	ClusterFailover Scenario = "ClusterFailover"
)

// Outcome is what a scenario did to one limiter, for [Subject].Check.
type Outcome struct {
	// Scenario is the scenario that ran.
	Scenario Scenario
	// Limiter is the limiter it checked, as New returned it, set up with
	// Config and Limit.
	Limiter Limiter
	Config  Config
	Limit   ratelimit.Limit
	// Calls are the calls made under load (KillRestart, Stall), in order
	// of start; Outage are those of them made while Redis could not
	// answer.
	Calls, Outage []faulttest.Call
	// Admitted counts the admissions the scenario counted (ClusterSlots,
	// ClusterMove), and Errors the calls that returned an error
	// (WrongKeyType, ClusterMove).
	Admitted, Errors int
}

// Run runs every scenario of the suite on limiters that s builds, as the
// subtests KillRestart, Stall, ScriptFlush, WrongKeyType and Cluster (with
// the subtests "keys in every slot range", "MOVED while in use" and
// "failover"), and fails t if a goroutine that one of them started
// outlives its cleanups. Scenarios that need redis-server (and redis-cli, for the
// Cluster) skip without it, or fail when the CI environment variable is
// set, as internal/redistest does.
func Run(t *testing.T, s Subject) {
	if s.New == nil {
		t.Fatal("limitertest: Subject.New is nil")
	}
	if len(s.Variants) == 0 {
		s.Variants = []string{"token_bucket"}
	}
	if s.FailLocalShare == nil {
		s.FailLocalShare = ratelimit.Limit.Share
	}
	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{string(KillRestart), s.killRestart},
		{string(Stall), s.stall},
		{string(ScriptFlush), s.scriptFlush},
		{string(WrongKeyType), s.wrongKeyType},
		{"Cluster", s.cluster},
	} {
		noLeak(t, sc.name, leakWait, sc.run)
	}
}

// tester is the part of *testing.T that noLeak uses.
type tester interface {
	Helper()
	Run(name string, fn func(*testing.T)) bool
	Errorf(format string, args ...any)
}

// leakWait is how long noLeak gives a scenario's goroutines to end after
// its cleanups: on a loaded machine a connection's reader may take a while
// to see that its server is gone. A leaked goroutine stays.
const leakWait = 5 * time.Second

// noLeak runs fn as the subtest name and fails t if a goroutine that the
// subtest started is still running wait after its cleanups.
func noLeak(t tester, name string, wait time.Duration, fn func(*testing.T)) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	if !t.Run(name, fn) {
		return // a failed scenario may leave its load running
	}
	deadline := time.Now().Add(wait)
	for {
		err := goleak.Find(before, IgnoreDialProbe) // retries for about 0.4 s
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: goroutines left after the scenario's cleanups: %v", name, err)
			return
		}
	}
}

// normal reports whether d is a decision the limiter makes while Redis
// answers: Source redis, or local for a leasing limiter.
func (s Subject) normal(d ratelimit.Decision) bool {
	return d.Source == ratelimit.SourceRedis || s.Leases && d.Source == ratelimit.SourceLocal
}

// normalSource names what normal accepts, for messages.
func (s Subject) normalSource() string {
	if s.Leases {
		return "Source redis or local"
	}
	return "Source redis"
}

// maxWait returns how long a call of a limiter set up as c may wait.
func (s Subject) maxWait(c Config) time.Duration {
	if s.MaxWait > 0 {
		return s.MaxWait
	}
	return c.Timeout
}

// check runs s.Check, if any.
func (s Subject) check(t *testing.T, o Outcome) {
	t.Helper()
	if s.Check != nil {
		s.Check(t, o)
	}
}

// QuietLog drops the records it is given: the scenarios open the
// limiters' circuit breakers on purpose.
var QuietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// Admitted checks key n times, in turn on each of ls, and returns how many
// checks were admitted. A failed check fails t.
func Admitted[L ratelimit.Limiter](t testing.TB, key string, n int, ls ...L) int {
	t.Helper()
	admitted := 0
	for i := range n {
		d, err := ls[i%len(ls)].Allow(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			admitted++
		}
	}
	return admitted
}

// Keyspace returns a keyspace whose prefix is unique to t.
func Keyspace(t testing.TB) ratelimit.Keyspace {
	t.Helper()
	ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// Client returns a client of srv that gives up dialling a dead server
// quickly and, unless cte is false, honours context deadlines. A client
// without ContextTimeoutEnabled gets socket timeouts far above the
// limiter's, so that only the limiter's own goroutine (internal/rcall)
// can bound its calls.
func Client(srv *redistest.Server, cte bool) *redis.Client {
	return srv.Client(func(o *redis.Options) {
		o.DialTimeout = 100 * time.Millisecond
		o.ContextTimeoutEnabled = cte
		if !cte {
			o.ReadTimeout = 3 * time.Second
			o.WriteTimeout = 3 * time.Second
		}
	})
}

// Main is the TestMain of a package of limiters: go-redis logs nothing
// (the scenarios make it fail to dial on purpose), and the package fails
// if any goroutine outlives its tests. Every client, server and limiter a
// test starts must be released by its cleanups, including the goroutines
// internal/rcall starts for clients without ContextTimeoutEnabled, which
// end once their late reply comes.
func Main(m *testing.M) {
	redis.SetLogger(quietRedis{})
	goleak.VerifyTestMain(m, IgnoreDialProbe)
}

// quietRedis is a go-redis logger that drops every line.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// IgnoreDialProbe ignores go-redis's dial probe: once dials to a node keep
// failing (a killed server, a crashed cluster master), its pool starts a
// goroutine that retries once a second until a dial succeeds or, at its
// next wake-up, the pool is closed. A client closed at cleanup therefore
// leaves it for up to a second, longer than goleak waits.
var IgnoreDialProbe = goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial")
