// Package lease is the leasing limiter: it serves most requests from an
// in-process counter and leases tokens from the shared Redis token bucket in
// batches, so a request almost never waits on Redis.
//
// # How a request flows
//
// Each key this instance sees has an entry holding the tokens Redis leased
// to it. [Limiter.AllowN] looks the entry up and takes n tokens with one
// compare-and-swap that never goes below zero:
//
//   - hit: tokens were there. The request is admitted with no lock, no
//     allocation, no Redis call and no clock read.
//   - low watermark: the hit left the batch at or below its low watermark
//     (two Redis round trips of local demand, at least a quarter of the
//     batch). A refill starts in the background, so a steady caller never
//     finds the batch empty.
//   - empty: the caller joins the key's refill (one per key and instance,
//     deduplicated with singleflight), bounded by its context and the
//     maximum wait, then takes its tokens.
//   - denied: Redis granted nothing. The script's retry-after is
//     remembered, so until then the key is denied locally, costing no Redis
//     call.
//
// A refill runs token_bucket_take_up_to.lua: one atomic script that takes as
// many tokens as the bucket holds, up to the lease size. It runs under the
// limiter's own timeout, not the first caller's context, so one caller's
// cancellation does not fail the others waiting on it.
//
// # Lease size
//
// The lease size adapts per key. An exponentially weighted moving average of
// the key's local demand (admissions and denials per second) says how many
// tokens one span of demand needs; the span is 50 ms or four Redis round
// trips, whichever is longer. The size is then capped by the accuracy
// budget (a fraction of the burst, 5% by default) and, when the Redis bucket
// is below half full, shrinks in proportion to what it holds, down to one.
// A key with little traffic therefore leases one token per request and
// behaves exactly like the per-request limiter, while a hot key leases
// large batches while its bucket is full.
//
// # Accuracy
//
// A token is served only after Redis granted it, so all instances together
// never admit more than the Redis bucket handed out. A janitor runs every
// TTL/4 and takes back the unspent tokens of every grant older than
// 0.75 × TTL, giving them back to Redis; so no token is served more than
// the lease TTL after it was granted, and over any interval T all instances
// together admit at most burst + rate × (T + TTL), plus at most the
// unspent tokens they held when it began. Unspent tokens also
// return to Redis when their key is evicted for idleness and on
// [Limiter.Close]. docs/accuracy.md has the argument and the measurements.
//
// The price of leasing is false denials: a request can be denied while
// tokens sit in another instance's lease. The accuracy budget bounds that:
// each instance holds at most budget × burst tokens.
//
// # Memory
//
// At most WithMaxKeys keys are tracked; beyond the cap a key is checked
// with one Redis call, and idle keys are evicted by the janitor. A tracked
// key costs about 320 bytes of heap (measured; 176 of them the entry),
// plus the key string.
package lease
