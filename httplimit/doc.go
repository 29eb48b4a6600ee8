// Package httplimit is net/http middleware that rate-limits requests.
//
// Two constructors, one behaviour:
//
//	// One limit, keyed by client IP:
//	lim, _ := algorithms.NewLimiter(rdb, ratelimit.PerMinute(100))
//	handler := httplimit.Limit(lim)(api)
//
//	// Plans: every limit of the client's tier, from a tiers.Limiter:
//	handler := httplimit.New(plans, httplimit.WithKey(httplimit.Header("X-API-Key")))(api)
//
// For each request the middleware extracts a client key ([ClientIP] by
// default, [Header], or a [KeyFunc] of your own), checks it, and then:
//
//   - under the limit: serves the request, with the RateLimit-Policy and
//     RateLimit header fields of draft-ietf-httpapi-ratelimit-headers
//     showing what remains;
//   - over the limit: lets the [reject.Strategy] decide (reject.Reject by
//     default). A refusal is answered 429 Too Many Requests (or the
//     reject.Status strategy's code and body) with Retry-After in whole
//     seconds, rounded up, and the RateLimit fields; its body is an RFC
//     9457 problem (application/problem+json, of the draft's
//     "quota-exceeded" type, naming the violated policies) when the
//     request's Accept prefers JSON to plain text, and "rate limit
//     exceeded" otherwise. A strategy that admits (Wait, Queue, Shadow)
//     serves the request;
//   - when the store fails (Redis down or too slow: errors.Is(err,
//     ratelimit.ErrStore)): follows the failure policy
//     ([WithFailurePolicy]): serving the request unlimited by default
//     (ratelimit.FailOpen), or answering 503 Service Unavailable
//     (ratelimit.FailClosed); and logs through log/slog, at most once a
//     second;
//   - when the request has no usable key: answers 400 Bad Request;
//   - when the client has no plan (no rule assigns it a tier and there is
//     no default tier, or a tier the config does not have is named) or its
//     tier cannot be resolved (the [WithTier] function or the
//     tiers.Resolver fails): answers 403 Forbidden, whatever the failure
//     policy;
//   - when the limiter is closed: answers 503 Service Unavailable;
//   - when the request's context ends before its check does (the client
//     hung up, or a deadline set in front of the middleware passed):
//     answers 503 Service Unavailable with Retry-After: 1, so that a
//     client still waiting is not sent an empty 200 OK; a context that
//     had ended on arrival is not checked, and spends nothing.
//
// Only store failures are subject to the failure policy: no other error
// lets a request through unlimited, and none reaches the handler.
//
// For example, with a tier "free" whose limit "second" allows 5 requests
// per second (GCRA, burst 5), a refused request gets
//
//	HTTP/1.1 429 Too Many Requests
//	Retry-After: 1
//	RateLimit-Policy: "free.second";q=5;w=1
//	RateLimit: "free.second";r=0;t=1
//
// # Header fields
//
// Each limit is one policy. Under [New], the policy of a limit is named
// "<tier>.<limit>" whatever the number of limits, so names never change
// when a tier gains or loses a limit; under [Limit], it is named
// [DefaultPolicyName]. [WithPolicyName] names them otherwise, so that two
// middlewares stacked on one handler (per client IP around per API key,
// say) tell their limits apart: each adds its items to the fields an outer
// one wrote, and the response describes both. RateLimit-Policy lists every
// limit of the client's tier:
//
//   - a token bucket or GCRA limit admits Burst requests at once and
//     refills them in Burst × Period / Rate: q is Burst and w that time;
//   - a fixed, sliding or calendar window limit admits Burst requests per
//     Period: q is Burst and w the Period (a calendar window's nominal
//     length);
//   - w is in whole seconds, at least 1: a window that is not is rounded
//     up, and q scaled to the same rate (rounded down, never below Burst).
//
// The algorithm is the one the limiter reports (algorithms.Limiter does;
// a ratelimit.Dynamic of algorithms.Limiters, that of the key's limiter),
// or for plans the limit's configured one (tiers.LimitResult.Algorithm);
// a limit whose algorithm is unknown, such as a leasing one (which runs
// the token bucket), is described as a token bucket.
//
// RateLimit lists the limits checked for the request; on a refusal, only
// the limits that refused. r is the requests the limit has left, and t
// the seconds, rounded up, until it has more (the draft's "time until
// additional quota"), not until it is full:
//
//   - a refusal: the time until the request could be admitted;
//   - a bucket: the time until its next token;
//   - a fixed or calendar window: the end of the window;
//   - a sliding window: the time by which a request has certainly left the
//     estimate (exact when the previous window was empty, which the
//     decision does not show; otherwise quota may return sooner).
//
// A limit that has all its quota has no t. With [WithPartitionKey], each
// RateLimit item also carries pk, a keyed hash of the partition the
// limit counts in (the client key, or the tier for a limit the tier
// shares), never the key itself. Retry-After, on a refusal, is never
// earlier than any t of the response. Values are bounded to what a
// structured-field Integer can carry. A decision made by a limiter's own
// failure policy (Source ratelimit.SourceFallback) says nothing about the
// shared limit and is left out of RateLimit.
//
// # Costs
//
// A request costs one token unless [WithCost] says otherwise. When the
// actual cost is known only after the work (an LLM call's tokens), the
// WithCost estimate is reserved up front, the handler reports the actual
// cost with [SetCost] (or [WithResponseCost] reads it from the response's
// header fields), and the middleware settles the difference when the
// handler returns (ratelimit.Settler): a refund, or a charge into debt
// that the client's later requests pay off.
//
// # Options
//
// Every option follows one rule: its zero value (nil, 0, empty) keeps the
// default, and a nil Option is skipped ([WithoutHeaders] takes no value). [Limit] takes [Option]s; [New]
// takes [PlanOption]s, which are every Option and [WithTier]. [ClientIPKey]
// takes [IPOption]s. Each is a type of its own, so that an option cannot
// be given where it would mean nothing.
package httplimit
