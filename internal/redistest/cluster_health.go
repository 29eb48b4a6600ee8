package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// WaitOK waits, at most 20 s, until the cluster is healthy: every live
// node reports cluster_state:ok with all 16384 slots served, every live
// node has the same slot map, every slot's master is live, and every live
// replica's link to its master is up. It fails t on timeout, naming what
// was still wrong.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	if err := c.waitFor(clusterWaitTimeout, c.healthy); err != nil {
		t.Fatalf("redistest: cluster not healthy after %v: %v", clusterWaitTimeout, err)
	}
}

// waitFor polls cond until it returns nil or limit passes, and returns
// its last error.
func (c *Cluster) waitFor(limit time.Duration, cond func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthy returns nil when the cluster is healthy as WaitOK defines it,
// else the first problem it found.
func (c *Cluster) healthy() error {
	var first []int
	for i, s := range c.nodes {
		if !s.alive() {
			continue
		}
		info, err := c.do(i, "CLUSTER", "INFO").Text()
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", s.Addr(), err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_slots_ok:16384"} {
			if !strings.Contains(info, want+"\r\n") {
				return fmt.Errorf("%s: CLUSTER INFO lacks %s", s.Addr(), want)
			}
		}
		m, err := c.slotMap(i)
		if err != nil {
			return err
		}
		if first == nil {
			first = m
			for slot, owner := range m {
				if owner < 0 || !c.nodes[owner].alive() {
					return fmt.Errorf("%s: slot %d is served by no live node", s.Addr(), slot)
				}
			}
		} else if slot := mismatch(first, m); slot >= 0 {
			return fmt.Errorf("nodes disagree about slot %d", slot)
		}
		if port, up := c.masterLink(i); port != 0 && !up {
			return fmt.Errorf("replica %s: link to master :%d is not up", s.Addr(), port)
		}
	}
	if first == nil {
		return fmt.Errorf("no live node")
	}
	return nil
}

func mismatch(a, b []int) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// slotMap returns, for every slot, the index of the node that node i says
// serves it, or -1. It reads CLUSTER SHARDS (Redis 7.0, which the harness
// needs anyway for --cluster-port): a shard's slots are served by its
// master.
func (c *Cluster) slotMap(i int) ([]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	shards, err := c.admin[i].ClusterShards(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SHARDS on %s: %w", c.nodes[i].Addr(), err)
	}
	m := make([]int, Slots)
	for s := range m {
		m[s] = -1
	}
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		id, err := shardMaster(sh)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER SHARDS on %s: %w", c.nodes[i].Addr(), err)
		}
		owner := slices.Index(c.ids, id)
		if owner < 0 {
			return nil, fmt.Errorf("CLUSTER SHARDS on %s: unknown node %s", c.nodes[i].Addr(), id)
		}
		for _, r := range sh.Slots {
			if r.Start < 0 || r.End >= Slots || r.Start > r.End {
				return nil, fmt.Errorf("CLUSTER SHARDS on %s: bad range %+v", c.nodes[i].Addr(), r)
			}
			for s := r.Start; s <= r.End; s++ {
				m[s] = owner
			}
		}
	}
	return m, nil
}

// shardMaster returns the ID of the master that serves the slots of sh. A
// shard can list two masters for a while after a failover: the promoted
// replica and the failed master it replaced, until that one rejoins as a
// replica (Redis 7.2 and later group nodes by shard ID, so both stay in
// one shard). The slots are then served by the master not marked failed
// (health "fail"; the command's documentation says "failed").
func shardMaster(sh redis.ClusterShard) (string, error) {
	var masters, healthy []string
	for _, n := range sh.Nodes {
		if n.Role != "master" {
			continue
		}
		masters = append(masters, n.ID)
		if n.Health != "fail" && n.Health != "failed" {
			healthy = append(healthy, n.ID)
		}
	}
	switch {
	case len(masters) == 1:
		return masters[0], nil
	case len(healthy) == 1:
		return healthy[0], nil
	}
	return "", fmt.Errorf("shard with slots %v lists masters %v, of which %v are not failed", sh.Slots, masters, healthy)
}
