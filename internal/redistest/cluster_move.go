package redistest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// MoveSlot moves slot, with its keys, from the master that serves it to
// master to, and waits until every live node agrees (at most 20 s). It is
// BeginMoveSlot followed by Finish. A client that cached the old slot map
// gets MOVED for the slot's keys from the old master and follows it.
func (c *Cluster) MoveSlot(t testing.TB, slot int, to *Server) {
	t.Helper()
	c.BeginMoveSlot(t, slot, to).Finish(t)
}

// A SlotMove is a slot migration in progress, made by
// [Cluster.BeginMoveSlot]: the source master has the slot MIGRATING and the
// destination IMPORTING. Until Finish, the source serves the keys it still
// holds and answers ASK for the others, so a test can move some keys with
// MoveKeys and exercise ASK redirects (and TRYAGAIN, for a command whose
// keys are split between the two masters).
type SlotMove struct {
	c        *Cluster
	slot     int
	from, to int // node indexes
}

// BeginMoveSlot starts moving slot from the master that serves it to
// master to: CLUSTER SETSLOT IMPORTING on to, then MIGRATING on the
// source. It fails t if to is not a live master or already serves slot.
func (c *Cluster) BeginMoveSlot(t testing.TB, slot int, to *Server) *SlotMove {
	t.Helper()
	from := c.index(c.MasterOfSlot(t, slot))
	dst := c.index(to)
	if from == dst {
		t.Fatalf("redistest: BeginMoveSlot: %s already serves slot %d", to.Addr(), slot)
	}
	if port, _ := c.masterLink(dst); !to.alive() || port != 0 {
		t.Fatalf("redistest: BeginMoveSlot: %s is not a live master", to.Addr())
	}
	m := &SlotMove{c: c, slot: slot, from: from, to: dst}
	m.must(t, dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", c.ids[from])
	m.must(t, from, "CLUSTER", "SETSLOT", slot, "MIGRATING", c.ids[dst])
	return m
}

// From returns the master the slot is moving from.
func (m *SlotMove) From() *Server { return m.c.nodes[m.from] }

// To returns the master the slot is moving to.
func (m *SlotMove) To() *Server { return m.c.nodes[m.to] }

// MoveKeys moves keys, which must belong to the slot, from the source to
// the destination with MIGRATE. Keys the source does not hold are skipped.
func (m *SlotMove) MoveKeys(t testing.TB, keys ...string) {
	t.Helper()
	if len(keys) == 0 {
		return
	}
	args := []any{"MIGRATE", "127.0.0.1", m.To().Port(), "", 0, adminTimeout.Milliseconds(), "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	if err := m.c.do(m.from, args...).Err(); err != nil && !strings.Contains(err.Error(), "NOKEY") {
		t.Fatalf("redistest: MIGRATE from %s: %v", m.From().Addr(), err)
	}
}

// Finish moves the keys left in the slot, assigns the slot to the
// destination (CLUSTER SETSLOT NODE on the destination, the source and
// every other master), and waits, at most 20 s, until every live node
// agrees and the cluster is healthy.
func (m *SlotMove) Finish(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(clusterWaitTimeout)
	for {
		keys, err := m.c.do(m.from, "CLUSTER", "GETKEYSINSLOT", m.slot, 100).StringSlice()
		if err != nil {
			t.Fatalf("redistest: CLUSTER GETKEYSINSLOT on %s: %v", m.From().Addr(), err)
		}
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: slot %d still has keys on %s after %v", m.slot, m.From().Addr(), clusterWaitTimeout)
		}
		m.MoveKeys(t, keys...)
	}
	owner := m.c.ids[m.to]
	m.must(t, m.to, "CLUSTER", "SETSLOT", m.slot, "NODE", owner)
	m.must(t, m.from, "CLUSTER", "SETSLOT", m.slot, "NODE", owner)
	for i, s := range m.c.nodes {
		if port, _ := m.c.masterLink(i); i != m.to && i != m.from && s.alive() && port == 0 {
			m.must(t, i, "CLUSTER", "SETSLOT", m.slot, "NODE", owner)
		}
	}
	err := m.c.waitFor(clusterWaitTimeout, func() error {
		for i, s := range m.c.nodes {
			if !s.alive() {
				continue
			}
			sm, err := m.c.slotMap(i)
			if err != nil {
				return err
			}
			if sm[m.slot] != m.to {
				return fmt.Errorf("%s does not yet see slot %d on %s", s.Addr(), m.slot, m.To().Addr())
			}
		}
		return m.c.healthy()
	})
	if err != nil {
		t.Fatalf("redistest: MoveSlot %d: %v", m.slot, err)
	}
}

func (m *SlotMove) must(t testing.TB, i int, args ...any) {
	t.Helper()
	if err := m.c.do(i, args...).Err(); err != nil {
		t.Fatalf("redistest: %v on %s: %v", args, m.c.nodes[i].Addr(), err)
	}
}
