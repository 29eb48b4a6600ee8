package keytable_test

import (
	"fmt"

	"github.com/distributedratelimiter/ratelimit/internal/keytable"
)

// client is a value that carries its own key, as the lease package's
// entries do.
type client struct {
	key  string
	hits int
}

func ExampleTable() {
	clients := keytable.New(func(c *client) string { return c.key })

	// The first LoadOrStore of a key stores; later ones return the stored value.
	c, loaded := clients.LoadOrStore("10.0.0.1", &client{key: "10.0.0.1"})
	fmt.Println(c.key, loaded)
	_, loaded = clients.LoadOrStore("10.0.0.1", &client{key: "10.0.0.1"})
	fmt.Println(loaded)

	// Load is the lock-free hot path.
	if c := clients.Load("10.0.0.1"); c != nil {
		c.hits++ // the table does not guard the value: this example has one goroutine
	}
	fmt.Println(clients.Load("10.0.0.2") == nil, clients.Len())

	// Delete only the value seen, so a value stored meanwhile survives.
	fmt.Println(clients.CompareAndDelete("10.0.0.1", c), clients.Len())
	// Output:
	// 10.0.0.1 false
	// true
	// true 1
	// true 0
}
