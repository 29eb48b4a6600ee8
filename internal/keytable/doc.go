// Package keytable is a concurrent hash table from string keys to
// pointers, made for the leasing limiter's table of per-key entries: many
// keys, chosen by clients, looked up by every request and written only
// when a key appears or is evicted. It does the job of a sync.Map from
// string to *T for about a tenth of the memory per key, and its Load takes
// no lock and does not allocate.
//
// # Model
//
// The values carry their own keys ([New] takes the function that reads
// one), so a slot is one atomic.Pointer[T]: 8 bytes, nil when empty. The
// keys are spread over 64 shards; each shard has a mutex for its writers
// and an atomic pointer to its current slot array, an open-addressing
// table probed linearly. A deleted slot becomes a tombstone (a sentinel
// pointer private to the table) so that probes go on past it.
//
// [Table.Load] hashes the key, loads the shard's array and probes it with
// atomic loads until an empty slot, skipping tombstones and comparing each
// value's key. [Table.LoadOrStore] and [Table.CompareAndDelete] lock the
// shard. When a store would fill more than 3/4 of the slots with values
// and tombstones, or a delete leaves under 3/8 of them holding values, the
// writer builds a new array half full, without tombstones, and publishes
// it with one atomic store. An array is never written once replaced, so a
// reader still probing it sees the shard as it was at that instant; see
// [Table.Load] for why that makes Load linearizable.
//
// # Choices
//
// Hashing is hash/maphash with a random seed per table: the keys are IPs,
// API keys and such, and a client that could predict the hash could send
// keys that all land on one probe run and make every probe of that shard
// long. The low 6 bits of the hash pick the shard; the home slot is the
// high 64 bits of hash × slots (Lemire's multiply-shift), which uses the
// high bits and needs no power-of-two size, so a rebuild can size an
// array to exactly twice its values.
//
// The shard count is fixed at 64 rather than derived from GOMAXPROCS.
// Loads never touch the mutexes, so shards only spread writers, and
// writes (a new key, an eviction) are rare next to loads. 64 also bounds
// a rebuild: it copies 1/64 of the table, blocks only that shard's
// writers, and holds old and new arrays of 1/64 of the table at once. A
// fixed count keeps the memory and probe figures the same on every
// machine. Each shard takes two cache lines (the array pointer that
// readers load on one, the writers' mutex and counters on the other), so
// 8 KiB per table.
//
// The slots hold only pointers, so every probed value is dereferenced to
// compare its key: a hit reads 1.5 to 2.5 slots on average (load 1/2 to
// 3/4), each a pointer chase. Storing hashes beside the pointers would
// save those chases at 8 more bytes a slot; for one hot key, the case
// that matters, the value is in cache anyway.
//
// The package uses no unsafe; reflect only checks, in New, that T is not
// zero-size (distinct zero-size values may share an address, and the
// table tells values apart by address).
//
// # Memory
//
// Every array larger than the 8-slot minimum is 3/8 to 3/4 full of values
// (10.7 to 21.3 bytes per key); one that only grew is 1/2 to 3/4 full
// (10.7 to 16). Tombstones count towards the 3/4, so endless churn of
// keys (eviction) rebuilds arrays at the same size and cannot grow them.
// TestMemoryPerKey measures the heap a table adds per key, besides the
// keys and values: 13 B/key for 100,000 keys, 19.5 B/key after deleting
// two keys in three, against 126 B/key for a sync.Map (whose Store also
// boxes each key in an interface value).
//
// # Speed
//
// On a 2-core VM a Load of one hot key takes 21 ns with one CPU and
// 10.5 ns with two (sync.Map: 24 and 13 ns); a Load among 10,000 keys is
// on a par with sync.Map; storing a new key is slower, 1.1 to 1.4 µs
// against 0.8 to 1.3 µs, but allocates nothing but the arrays (38 B/op
// amortized, against sync.Map's 2 allocations and 121 B). bench_test.go
// has the command, the table and how to read it.
package keytable
