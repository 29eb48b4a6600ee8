package algorithms

// scriptNames maps the SHA-1 of each embedded script, as EVALSHA names it,
// to the script's short name: its file name in lua/ without ".lua".
var scriptNames = map[string]string{
	tokenBucketTakeScript.Hash():     "token_bucket_take",
	tokenBucketTakeUpToScript.Hash(): "token_bucket_take_up_to",
	tokenBucketGiveBackScript.Hash(): "token_bucket_give_back",
	gcraScript.Hash():                "gcra",
	gcraRefundScript.Hash():          "gcra_refund",
	fixedWindowScript.Hash():         "fixed_window",
	fixedWindowRefundScript.Hash():   "fixed_window_refund",
	slidingWindowScript.Hash():       "sliding_window",
	slidingWindowRefundScript.Hash(): "sliding_window_refund",

	calendarWindowScript.Hash():       "calendar_window",
	calendarWindowRefundScript.Hash(): "calendar_window_refund",

	tokenBucketPeekScript.Hash():    "token_bucket_peek",
	gcraPeekScript.Hash():           "gcra_peek",
	fixedWindowPeekScript.Hash():    "fixed_window_peek",
	slidingWindowPeekScript.Hash():  "sliding_window_peek",
	calendarWindowPeekScript.Hash(): "calendar_window_peek",
	resetScript.Hash():              "reset",

	tokenBucketChargeScript.Hash():    "token_bucket_charge",
	gcraChargeScript.Hash():           "gcra_charge",
	fixedWindowChargeScript.Hash():    "fixed_window_charge",
	slidingWindowChargeScript.Hash():  "sliding_window_charge",
	calendarWindowChargeScript.Hash(): "calendar_window_charge",
}

// ScriptName returns the short name of the package's embedded Lua script
// whose SHA-1 is sha1, in the lower-case hex that EVALSHA takes (for
// example "token_bucket_take_up_to"), and false for any other script. The
// name is the script's file name without ".lua". It is meant for
// telemetry: a go-redis hook can tell this package's EVAL and EVALSHA
// calls from others and label them. It is safe for concurrent use.
func ScriptName(sha1 string) (name string, ok bool) {
	name, ok = scriptNames[sha1]
	return name, ok
}
