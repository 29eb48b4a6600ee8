// Package lease is the leasing limiter: it serves most requests from an
// in-process counter and leases tokens from the shared Redis token bucket in
// batches, so a request almost never waits on Redis.
//
// # How a request flows
//
// Each key this instance sees has an entry holding the tokens Redis leased
// to it. [Limiter.AllowN] looks the entry up and takes n tokens with one
// compare-and-swap that never goes below zero (on a hot key, from the
// caller's stripe of the key's tokens, so that cores do not contend):
//
//   - hit: tokens were there. The request is admitted with no lock, no
//     allocation, no Redis call and no clock read.
//   - low watermark: the hit left the batch at or below its low watermark
//     (two Redis round trips of local demand, at least an eighth of the
//     batch). A refill starts in the background, so a steady caller never
//     finds the batch empty. A single-token lease has a watermark of 0 and
//     never prefetches: the token would sit at this instance.
//   - empty: the slow path, whose steps are named in the code: spread a
//     hot key's tokens over its stripes again (gathered only for a request
//     larger than one stripe holds) and release tokens granted ahead that
//     fell due; a
//     remembered denial; a degraded key decided by the failure policy at
//     once; an inline refill for a quiet key, on the caller's goroutine;
//     otherwise the caller joins the key's background refill (one per key
//     and instance, deduplicated with singleflight; a caller's own inline
//     refill may run beside it), waiting at most
//     [DefaultMaxWait] (250 ms) and its context.
//   - denied: Redis granted nothing. The script's retry-after is
//     remembered (for a busy key, stretched to a lease's worth of tokens),
//     so until then the key is denied locally, costing no Redis call.
//
// A refill runs token_bucket_take_up_to.lua: one atomic script that charges
// what a fallback admitted (see below), then takes as many tokens as the
// bucket holds, up to the lease size. It runs under the limiter's own
// timeout (1 s), not the first caller's context, so one caller's
// cancellation does not fail the others waiting on it.
//
// # Lease size
//
// The lease size adapts per key. An exponentially weighted moving average of
// the key's local demand (admissions and denials per second) says how many
// tokens one span of demand needs; the span is 50 ms or four Redis round
// trips, whichever is longer.
//
//   - A long lease covers up to twenty spans (1 s, at most half the lease
//     TTL) of demand, and the script grants it only from a bucket at least
//     a quarter full, at most half of what the bucket holds then (it
//     decides from the level it finds, not from what the instance saw at
//     its last call). Tokens taken from a bucket that full deny no one, and
//     a key under its limit asks Redis about once a second; as demand nears
//     the limit the bucket drains and long leases shrink away.
//   - A short lease covers one span; while the bucket is under half full
//     it is capped by the accuracy budget (a fraction of the burst, 5% by
//     default), shrinking in proportion to what the bucket holds, down to
//     one. A key leases the larger of the two.
//   - But a quiet key (under 16 tokens of demand per span: 320 requests/s
//     at an instance) whose bucket was under half full at its last grant
//     needs one token at a time: it never leases ahead, remembers a denial
//     only until Redis's next token is due, and refunds to Redis, so that
//     it gets the per-request limiter's decisions; only if the script finds
//     the bucket at least a quarter full again does it grant a long lease.
//     A key whose accuracy budget is under two tokens always leases one.
//   - A busy key whose bucket is empty leases a share of the refill rate
//     instead (unless [WithGrantAhead] is false): tokens not yet earned,
//     served on their schedule, never early.
//
// A key with little traffic therefore leases one token per request and
// behaves exactly like the per-request limiter.
//
// # Accuracy
//
// A token is served only after Redis granted it, so all instances together
// never admit more than the Redis bucket handed out. A janitor runs every
// TTL/4 and takes back the unspent tokens of every grant older than
// 0.75 × TTL, returning them to Redis; so no token is served more than
// the lease TTL (2 s) after it was granted, and over any interval T all
// instances together admit at most burst + rate × (T + TTL), plus at most
// the unspent tokens they held when it began. Unspent tokens also return
// to Redis when their key is evicted for idleness and on [Limiter.Close].
//
// # When Redis is slow or down
//
// A refill still out after the maximum wait marks its key degraded, as
// does a refill that failed: the failure policy decides the key's requests
// at once (after its leased tokens), and the key tries Redis again in the
// background at most every 100 ms; the first refill that succeeds ends it.
// The default policy, ratelimit.FailLocal, limits the key with a local
// bucket that starts empty and earns at the share of the limit Redis
// recently granted this instance, and its admissions are charged to Redis
// by the next refill, so that a pause shifts admissions in time instead of
// adding to them. docs/accuracy.md states the bound in each mode, with the
// measurements.
//
// The price of leasing is false denials: a request can be denied while
// tokens sit in another instance's lease. The accuracy budget and the
// sizing above bound that, and quiet keys avoid it.
//
// # Quotas
//
// A Limiter implements ratelimit.Inspector and ratelimit.Settler:
// [Limiter.Peek] counts what Redis holds plus this instance's leased
// tokens, [Limiter.Reset] gives a key its burst again (other instances
// serve at most what they held, for at most the lease TTL), and
// [Limiter.SettleN] settles a cost known after the response, into debt of
// at most one burst. docs/quotas.md states what each answer means.
//
// # Memory
//
// At most WithMaxKeys keys are tracked; beyond the cap a key is checked
// with one Redis call, and idle keys are evicted by the janitor. A tracked
// key costs about 190 bytes of heap (measured by TestMemoryBytesPerKey:
// 160 of them the entry, 16 its grant record until the janitor drops it
// once spent, 11 to 16 its slot in the key table), plus the key string; a key that Redis limited or could not serve, or that was
// reset or refunded, adds 96 bytes, and a hot key's stripes up to 1 KiB.
package lease
