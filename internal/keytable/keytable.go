package keytable

import (
	"hash/maphash"
	"math/bits"
	"reflect"
	"sync"
	"sync/atomic"
)

const (
	// shardBits gives the number of shards, 1<<shardBits (see the package
	// documentation for why it is fixed).
	shardBits = 6
	numShards = 1 << shardBits

	// minSlots is the smallest slot array a shard allocates.
	minSlots = 8

	// cacheLine is the padding unit of a shard, so that neighbouring shards,
	// and the read side and write side of one shard, share no cache line.
	cacheLine = 64
)

// Table is a concurrent hash table from string keys to values of type *T,
// where each value carries its own key: the table stores only the pointer
// and asks the key function given to [New] for a stored value's key.
//
// Call [Table.Load] on the hot path: it takes no lock and does not
// allocate. [Table.LoadOrStore] and [Table.CompareAndDelete] are the
// authoritative writes; [Table.Range] and [Table.Len] are weakly
// consistent. A value's key must not change while the value is stored,
// and a value must be stored under its own key.
//
// A Table is safe for concurrent use. The zero value is not usable: create
// it with [New].
type Table[T any] struct {
	// shards come first, so that their padding lines up with cache lines:
	// the allocator places a Table 8 bytes (its malloc header) past a
	// 64-byte boundary, so each shard's arr and its writer fields land on
	// lines of their own.
	shards [numShards]shard[T]

	key  func(*T) string // a stored value's key; set by New, read-only
	seed maphash.Seed    // random per table, so clients cannot aim keys at one probe run
	tomb *T              // the tombstone: marks a deleted slot; never returned or passed to key
}

// shard is one independently locked part of a Table: the keys whose hash
// has these low shardBits.
type shard[T any] struct {
	// arr is the current slot array, nil until the first store. Readers
	// load it without locking; only a writer holding mu stores it, and an
	// array it replaces is never written again.
	arr atomic.Pointer[array[T]]
	_   [cacheLine - 8]byte // keep arr's line free of writer traffic

	mu   sync.Mutex   // serializes this shard's writers: protects dead, every store to arr and every store to *arr's slots
	live atomic.Int64 // values in *arr; stored under mu, loaded by Len without it
	dead int          // tombstones in *arr; protected by mu
	_    [cacheLine - 24]byte
}

// array is one slot array of a shard. A slot holds nil (empty, ends a
// probe), the table's tombstone (deleted, the probe goes on) or a value.
// While the array is current, a slot only moves away from nil, never back:
// nil → value, value → tombstone, tombstone → value. Under mu, at most 3/4
// of the slots are non-nil, so every probe ends.
type array[T any] struct {
	slots []atomic.Pointer[T]
}

// New returns an empty Table whose values have the key key(v). key must be
// cheap, safe for concurrent use, and return the same string for a value
// for as long as it is stored. New panics if key is nil or T has size
// zero (distinct zero-size values may share one address, and the table
// tells values apart by address).
func New[T any](key func(*T) string) *Table[T] {
	if key == nil {
		panic("keytable: New with a nil key function")
	}
	if reflect.TypeFor[T]().Size() == 0 {
		panic("keytable: New with a zero-size value type")
	}
	return &Table[T]{key: key, seed: maphash.MakeSeed(), tomb: new(T)}
}

// hash returns key's hash and its shard. The shard takes the hash's low
// bits and home (via a multiply) its high bits, so the two are independent.
func (t *Table[T]) hash(key string) (uint64, *shard[T]) {
	h := maphash.String(t.seed, key)
	return h, &t.shards[h&(numShards-1)]
}

// home returns the first slot of h's probe sequence in an array of n
// slots: the high 64 bits of h×n, uniform in [0, n) for any n.
func home(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}

// Load returns the value stored under key, or nil. It takes no lock and
// does not allocate.
//
// Load is linearizable: its result is the table's content for key at some
// instant between its call and its return. So it sees every store and
// delete that returned before Load was called (and, transitively, any that
// happened before the call); a LoadOrStore or CompareAndDelete of the same
// key running concurrently may or may not be seen. In particular Load may
// miss a value being stored, so a miss does not prove the key absent: to
// create a value, call LoadOrStore, which decides under the shard's lock
// which value wins. And Load may return a value that a concurrent
// CompareAndDelete is deleting (any value may be deleted as soon as it is
// returned); callers that must not act on a deleted value mark it
// themselves before deleting it. Once no writer runs, Load is exact.
//
// Why, while a writer rebuilds the shard: Load probes the array it loaded,
// which was current at that load. If that array is replaced before Load
// reads a slot, it was frozen at the replacement, when its content was the
// table's; if not, the slot read is the table's content at the read. Slots
// only leave nil and a key has at most one slot per array, so the probe
// cannot stop before that key's slot.
func (t *Table[T]) Load(key string) *T {
	h, s := t.hash(key)
	a := s.arr.Load()
	if a == nil {
		return nil
	}
	n := len(a.slots)
	for i := home(h, n); ; {
		p := a.slots[i].Load()
		if p == nil {
			return nil
		}
		if p != t.tomb && t.key(p) == key {
			return p
		}
		if i++; i == n {
			i = 0
		}
	}
}

// LoadOrStore returns the value stored under key and true if there is one;
// otherwise it stores v, whose key must be key, and returns v and false.
// Of concurrent LoadOrStore calls for an absent key exactly one stores;
// the others return its value. v must not be nil.
//
// When key is present it returns without locking (a Load, with the same
// caveat: the value may be being deleted); otherwise it locks key's shard,
// and may rebuild the shard's array (see the package documentation).
func (t *Table[T]) LoadOrStore(key string, v *T) (actual *T, loaded bool) {
	if v == nil {
		panic("keytable: LoadOrStore of a nil value")
	}
	if p := t.Load(key); p != nil {
		return p, true
	}
	h, s := t.hash(key) // again: Load is faster with the hash inline
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arr.Load()
	if a == nil {
		a = t.rebuild(s, nil, 1)
	}
	n := len(a.slots)
	free := -1 // the first tombstone on the probe, reused for v
	i := home(h, n)
	for {
		p := a.slots[i].Load()
		if p == nil {
			break
		}
		if p == t.tomb {
			if free < 0 {
				free = i
			}
		} else if t.key(p) == key {
			return p, true
		}
		if i++; i == n {
			i = 0
		}
	}
	live := int(s.live.Load())
	switch {
	case free >= 0:
		// A tombstone becomes a value: readers probing past it still do.
		a.slots[free].Store(v)
		s.dead--
	case 4*(live+s.dead+1) > 3*n:
		// One more non-nil slot would exceed the load factor: rebuild,
		// dropping tombstones, and store v into the new array before it is
		// published.
		a = t.rebuild(s, a, live+1)
		t.place(a, h, v)
		s.arr.Store(a)
	default:
		a.slots[i].Store(v)
	}
	s.live.Add(1)
	return v, false
}

// CompareAndDelete deletes the value stored under key if it is v, and
// reports whether it did. It locks key's shard, and shrinks the shard's
// array once under 3/8 of its slots hold values.
func (t *Table[T]) CompareAndDelete(key string, v *T) (deleted bool) {
	if v == nil {
		return false
	}
	h, s := t.hash(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arr.Load()
	if a == nil {
		return false
	}
	n := len(a.slots)
	for i := home(h, n); ; {
		p := a.slots[i].Load()
		if p == nil {
			return false
		}
		if p != t.tomb && t.key(p) == key {
			if p != v {
				return false
			}
			a.slots[i].Store(t.tomb)
			s.dead++
			live := int(s.live.Add(-1))
			if 8*live < 3*n && n > minSlots {
				s.arr.Store(t.rebuild(s, a, live))
			}
			return true
		}
		if i++; i == n {
			i = 0
		}
	}
}

// Range calls f for the stored values, one shard after another, until f
// returns false. It takes no lock, so f may call any method of the table.
//
// Range is weakly consistent, as sync.Map.Range is: it corresponds to no
// single snapshot. A value stored for the whole call is visited exactly
// once; a value stored or deleted during the call may or may not be. One
// difference from sync.Map: a key deleted and stored again during the call
// may be visited twice, once with each value (or twice with the same value
// if that was stored again).
func (t *Table[T]) Range(f func(v *T) bool) {
	for si := range t.shards {
		a := t.shards[si].arr.Load()
		if a == nil {
			continue
		}
		for i := range a.slots {
			if p := a.slots[i].Load(); p != nil && p != t.tomb {
				if !f(p) {
					return
				}
			}
		}
	}
}

// Len returns the number of stored values. It takes no lock; while
// writers run, it may count a store or delete in flight, and it need not
// agree with a Range. Once no writer runs, it is exact.
func (t *Table[T]) Len() int {
	var n int64
	for si := range t.shards {
		n += t.shards[si].live.Load()
	}
	return int(n)
}

// rebuild returns a new array for s, sized for want values at half load
// (but minSlots at least), holding old's values and no tombstones, and
// resets s.dead. It publishes the array only if old is nil; otherwise the
// caller does, after any store of its own. The caller holds s.mu.
//
// Sizing: a store rebuilds when the values and tombstones would pass 3/4
// of the slots, a delete when the values fall under 3/8, and the new array
// is half full. So every array above minSlots is between 3/8 and 3/4 full
// of values, 10.7 to 21.3 bytes per value, and between 1/2 and 3/4 in a
// table that only grows (10.7 to 16). A rebuild of n slots follows at
// least n/8 stores or deletes since the last (n/4 stores to fill it, n/8
// deletes to empty it): a constant amortized cost, also under endless
// churn, where tombstones count towards the 3/4 and the rebuild drops
// them.
func (t *Table[T]) rebuild(s *shard[T], old *array[T], want int) *array[T] {
	a := &array[T]{slots: make([]atomic.Pointer[T], max(2*want, minSlots))}
	if old != nil {
		for i := range old.slots {
			if p := old.slots[i].Load(); p != nil && p != t.tomb {
				t.place(a, maphash.String(t.seed, t.key(p)), p)
			}
		}
	} else {
		s.arr.Store(a)
	}
	s.dead = 0
	return a
}

// place stores v, whose hash is h, into the first empty slot of its probe
// in a, an array no reader has seen yet and with no value of v's key.
func (t *Table[T]) place(a *array[T], h uint64, v *T) {
	n := len(a.slots)
	i := home(h, n)
	for a.slots[i].Load() != nil {
		if i++; i == n {
			i = 0
		}
	}
	a.slots[i].Store(v)
}
