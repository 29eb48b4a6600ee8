package lease

import (
	"testing"
	"unsafe"
)

// TestGrantsSpentAreDropped: a grant callers spent in full is dropped by
// the next add, so a key refilled often between janitor passes keeps only
// the grants it still holds tokens of, in the array it already has; expiry
// still finds the unspent ones.
func TestGrantsSpentAreDropped(t *testing.T) {
	e := newEntry("k", 0)
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range 100 { // a quiet key: one token per refill, spent at once
		e.add(1, int64(i))
		e.take(1)
	}
	if len(e.grants) != 1 || cap(e.grants) != 1 {
		t.Fatalf("after 100 single-token grants spent: %d grants (capacity %d), want 1 (1)", len(e.grants), cap(e.grants))
	}
	e.add(10, 100)
	e.take(4) // the last single token is spent already: 4 of the 10
	e.add(5, 200)
	if len(e.grants) != 2 {
		t.Fatalf("%d grants, want 2: the spent single token dropped, the 10 and the 5 kept", len(e.grants))
	}
	e.take(6) // the rest of the 10
	e.add(3, 300)
	if len(e.grants) != 2 || e.grants[0].at != 200 {
		t.Fatalf("grants %+v, want those of 200 and 300", e.grants)
	}
	if got := e.expire(250); got != 5 || e.tokens.Load() != 3 {
		t.Fatalf("expire took %d, left %d: want the 5 of the grant at 200, keep 3", got, e.tokens.Load())
	}
}

// TestEntrySize: every tracked key costs one entry, and the budget of
// 200 bytes of heap per tracked key, its table slot included, holds only
// while an entry fits Go's 160-byte size class. A field that breaks it
// belongs in extra, or must take the place of another.
func TestEntrySize(t *testing.T) {
	got := unsafe.Sizeof(entry{})
	t.Logf("entry %d bytes, extra %d", got, unsafe.Sizeof(extra{}))
	if got > 160 {
		t.Errorf("entry is %d bytes, want at most 160 (the 160-byte size class)", got)
	}
}
