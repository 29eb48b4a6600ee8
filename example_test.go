package ratelimit_test

import (
	"errors"
	"fmt"

	"github.com/distributedratelimiter/ratelimit"
)

func ExamplePerSecond() {
	lim := ratelimit.PerSecond(100).WithBurst(200)
	fmt.Println(lim)
	fmt.Println("one token every", lim.Interval())
	fmt.Println(lim.PerSecondRate(), "per second")
	// Output:
	// 100/1s burst 200
	// one token every 10ms
	// 100 per second
}

func ExampleLimit_Validate() {
	for _, lim := range []ratelimit.Limit{
		ratelimit.PerMinute(60),
		ratelimit.Per(10, 0),
		ratelimit.PerSecond(5).WithBurst(0),
	} {
		err := lim.Validate()
		fmt.Println(errors.Is(err, ratelimit.ErrInvalidLimit), err)
	}
	// Output:
	// false <nil>
	// true ratelimit: invalid limit: period must be positive, got 0s
	// true ratelimit: invalid limit: burst must be positive, got 0
}

func ExampleKeyspace_ClientKey() {
	var ks ratelimit.Keyspace // the zero value uses ratelimit.DefaultPrefix
	for _, key := range []string{"user:42", "a{b}c", "100% é"} {
		rk, err := ks.ClientKey(key, "token_bucket")
		if err != nil {
			panic(err)
		}
		// The part between the braces is the Redis Cluster hash tag: all
		// keys of one client live in one slot.
		fmt.Printf("%q -> %s (hash tag %s)\n", key, rk, ratelimit.HashTag(rk))
	}
	// Output:
	// "user:42" -> rl:{c:user:42}:token_bucket (hash tag c:user:42)
	// "a{b}c" -> rl:{c:a%7Bb%7Dc}:token_bucket (hash tag c:a%7Bb%7Dc)
	// "100% é" -> rl:{c:100%25%20%C3%A9}:token_bucket (hash tag c:100%25%20%C3%A9)
}
