package algorithms

import (
	"embed"
	"io/fs"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/internal/luasrc"
)

// luaFiles holds one script file per operation (lua/*.lua, each with the
// header that states its KEYS, ARGV and reply) and the fragments they
// share (lua/lib/*.lua).
//
//go:embed lua
var luaFiles embed.FS

// The scripts, by algorithm and operation: check, refund (for the token
// bucket, return), peek and charge; then the token bucket's leasing
// primitive and the reset of every algorithm.
var (
	tokenBucketTakeScript   = newScript("token_bucket_take")
	tokenBucketReturnScript = newScript("token_bucket_return")
	tokenBucketPeekScript   = newScript("token_bucket_peek")
	tokenBucketChargeScript = newScript("token_bucket_charge")

	gcraScript       = newScript("gcra")
	gcraRefundScript = newScript("gcra_refund")
	gcraPeekScript   = newScript("gcra_peek")
	gcraChargeScript = newScript("gcra_charge")

	fixedWindowScript       = newScript("fixed_window")
	fixedWindowRefundScript = newScript("fixed_window_refund")
	fixedWindowPeekScript   = newScript("fixed_window_peek")
	fixedWindowChargeScript = newScript("fixed_window_charge")

	slidingWindowScript       = newScript("sliding_window")
	slidingWindowRefundScript = newScript("sliding_window_refund")
	slidingWindowPeekScript   = newScript("sliding_window_peek")
	slidingWindowChargeScript = newScript("sliding_window_charge")

	calendarWindowScript       = newScript("calendar_window")
	calendarWindowRefundScript = newScript("calendar_window_refund")
	calendarWindowPeekScript   = newScript("calendar_window_peek")
	calendarWindowChargeScript = newScript("calendar_window_charge")

	tokenBucketTakeUpToScript = newScript("token_bucket_take_up_to")
	resetScript               = newScript("reset")
)

// scriptNames maps the SHA-1 of each script, as EVALSHA names it, to the
// script's short name: its file name in lua/ without ".lua".
var scriptNames = map[string]string{}

// newScript builds the script lua/name.lua, its fragments included (see
// package luasrc), and records its name. The text, and so the SHA-1, is
// the same in every process built from the same files. It panics if the
// files are not there: they are embedded, so a test catches that.
func newScript(name string) *redis.Script {
	src, err := scriptSource(name)
	if err != nil {
		panic(err)
	}
	s := redis.NewScript(src)
	scriptNames[s.Hash()] = name
	return s
}

// scriptSource returns the text of the script lua/name.lua.
func scriptSource(name string) (string, error) {
	lua, err := fs.Sub(luaFiles, "lua")
	if err != nil {
		return "", err
	}
	return luasrc.Expand(lua, name+".lua")
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
