package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Time bounds of the cluster helpers. They are far above what the
// operations take on a loaded two-core machine (about 2 s to create a
// cluster, 3 s for a failover), and keep a broken cluster from hanging a
// test.
const (
	clusterCreateTimeout = 30 * time.Second
	clusterWaitTimeout   = 20 * time.Second
	adminTimeout         = 5 * time.Second
)

// clusterArgs are the server arguments of every cluster node. A node
// timeout of 1 s makes a failover take about 3 s; replica migration is off
// so that the topology changes only when a test changes it; and a replica
// syncs at once instead of after the default 5 s diskless-sync delay.
var clusterArgs = []string{
	"--repl-diskless-sync-delay", "0",
	"--cluster-enabled", "yes",
	"--cluster-config-file", "nodes.conf",
	"--cluster-node-timeout", "1000",
	"--cluster-allow-replica-migration", "no",
	"--cluster-require-full-coverage", "yes",
}

// Cluster is a Redis Cluster of redis-server processes on loopback ports,
// made by [StartCluster] and stopped when the test ends.
//
// Nodes are [*Server]s: Kill, Restart and Pause work on them as on a
// standalone server. A restarted node keeps its cluster identity (its
// nodes.conf survives in its directory) but not its data; the cluster then
// makes it a replica of whichever node took over its slots. Call
// [Cluster.WaitOK] after changing the topology by hand.
//
// Methods that can fail take the calling test's t and fail it; they may
// be called from subtests. A Cluster is safe for concurrent use, but
// topology changes (Failover, MoveSlot, Kill, Restart) must not run
// concurrently with each other.
type Cluster struct {
	t     testing.TB
	nodes []*Server
	admin []*redis.Client // admin[i] talks to nodes[i] alone
	ids   []string        // ids[i] is the cluster node ID of nodes[i]
}

// StartCluster starts masters × (1 + replicasPer) redis-server processes
// in cluster mode, joins them into one cluster with `redis-cli --cluster
// create` (masters must be at least 3), and waits until every node
// reports cluster_state:ok, all 16384 slots are served, and every replica
// is in sync with its master. The cluster is stopped when t ends.
//
// It needs redis-server and redis-cli (Debian package redis-tools): when
// either is missing it skips t, or fails it when the CI environment
// variable is set, like [Binary]. Creating a cluster takes about 2 s.
func StartCluster(t testing.TB, masters, replicasPer int) *Cluster {
	t.Helper()
	if masters < 3 || replicasPer < 0 {
		t.Fatalf("redistest: StartCluster(%d, %d): a cluster needs at least 3 masters and no negative replicas", masters, replicasPer)
	}
	Binary(t)
	cli := binary(t, "redis-cli")

	n := masters * (1 + replicasPer)
	c := &Cluster{t: t}
	for range n {
		s := startNode(t)
		c.nodes = append(c.nodes, s)
		c.admin = append(c.admin, s.Client())
	}

	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPer), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}

	c.ids = make([]string, n)
	for i := range c.nodes {
		id, err := c.do(i, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("redistest: CLUSTER MYID on %s: %v", c.nodes[i].Addr(), err)
		}
		c.ids[i] = id
	}
	c.WaitOK(t)
	return c
}

// startNode starts one cluster node. Redis listens for the cluster bus on
// a second port, by default the client port + 10000, which may be taken or
// beyond 65535; so it picks that port too (--cluster-port).
func startNode(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var bus int
		if s.port, err = freePort(); err != nil {
			continue
		}
		if bus, err = freePort(); err != nil {
			continue
		}
		if bus == s.port {
			err = fmt.Errorf("port %d picked twice", bus)
			continue
		}
		s.args = append([]string{"--cluster-port", strconv.Itoa(bus)}, clusterArgs...)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start cluster node: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// alive reports whether the server process is running (was not killed).
func (s *Server) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Addrs returns the host:port of every node, live or killed, in the order
// of Nodes.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Nodes returns every node, live or killed, in the order they were
// started. redis-cli chooses which become masters, and failovers change
// it: ask [Cluster.Masters], [Cluster.MasterOf] or [Cluster.Replicas].
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// ID returns the cluster node ID of s, a node of c.
func (c *Cluster) ID(s *Server) string { return c.ids[c.index(s)] }

// Client returns a new cluster client that knows every node, closed when
// the test that started the cluster ends. Like [Server.Client], it honours
// context deadlines (ContextTimeoutEnabled), has 1 s socket timeouts and
// does not retry failed commands; it dials once per attempt
// (DialerRetries 1), and follows up to 3 MOVED and ASK redirects. opts may
// adjust it, for example to set ClusterStateReloadInterval or NewClient.
//
// Mind that go-redis (v9.22 and v9.23) reloads its slot map only on MOVED
// and every ClusterStateReloadInterval (default 60 s), not when a node
// stops answering: after [Cluster.Failover] a client that knew the old
// master keeps dialling it until then, unless it calls
// [redis.ClusterClient.ReloadState]. See TestClusterFailover.
func (c *Cluster) Client(opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	o := &redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	}
	for _, f := range opts {
		f(o)
	}
	rc := redis.NewClusterClient(o)
	c.t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// Slot returns the hash slot of key, as CLUSTER KEYSLOT computes it.
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	i := c.live(t)
	n, err := c.do(i, "CLUSTER", "KEYSLOT", key).Int()
	if err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT on %s: %v", c.nodes[i].Addr(), err)
	}
	return n
}

// MasterOf returns the master that serves key, as a live node sees the
// slot map (CLUSTER KEYSLOT, then CLUSTER SHARDS).
func (c *Cluster) MasterOf(t testing.TB, key string) *Server {
	t.Helper()
	return c.MasterOfSlot(t, c.Slot(t, key))
}

// MasterOfSlot returns the master that serves slot, as a live node sees
// the slot map.
func (c *Cluster) MasterOfSlot(t testing.TB, slot int) *Server {
	t.Helper()
	m, err := c.slotMap(c.live(t))
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	if slot < 0 || slot >= Slots || m[slot] < 0 {
		t.Fatalf("redistest: slot %d has no master", slot)
	}
	return c.nodes[m[slot]]
}

// Masters returns the masters that serve at least one slot, as a live
// node sees the slot map, in the order of Nodes.
func (c *Cluster) Masters(t testing.TB) []*Server {
	t.Helper()
	m, err := c.slotMap(c.live(t))
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	var masters []*Server
	for i, s := range c.nodes {
		if slices.Contains(m, i) {
			masters = append(masters, s)
		}
	}
	return masters
}

// Replicas returns the live replicas of master, as they see themselves
// (ROLE), in the order of Nodes.
func (c *Cluster) Replicas(t testing.TB, master *Server) []*Server {
	t.Helper()
	var rs []*Server
	for i, s := range c.nodes {
		if port, _ := c.masterLink(i); s.alive() && s != master && port == master.Port() {
			rs = append(rs, s)
		}
	}
	return rs
}

// masterLink returns the port of the master that node i replicates and
// whether the replication link is up, or 0 when i is a master or does not
// answer.
func (c *Cluster) masterLink(i int) (port int, up bool) {
	role, err := c.do(i, "ROLE").Slice()
	if err != nil || len(role) < 4 || role[0] != "slave" {
		return 0, false
	}
	p, _ := role[2].(int64)
	return int(p), role[3] == "connected"
}

// Failover kills master, as a crash would, and waits until the cluster
// has promoted one of its replicas and is healthy again (see
// [Cluster.WaitOK]): at most 20 s, about 3 s in practice. It returns the
// promoted replica. It fails t if master serves no slot or has no live
// replica.
//
// Clients see errors for master's slots between the kill and the
// promotion. A [redis.ClusterClient] learns the new master when a command
// fails on the dead one; see the package tests.
func (c *Cluster) Failover(t testing.TB, master *Server) *Server {
	t.Helper()
	i := c.index(master)
	m, err := c.slotMap(i)
	if err != nil {
		t.Fatalf("redistest: Failover: %v", err)
	}
	slot := slices.Index(m, i)
	if slot < 0 {
		t.Fatalf("redistest: Failover: %s serves no slot", master.Addr())
	}
	replicas := c.Replicas(t, master)
	if len(replicas) == 0 {
		t.Fatalf("redistest: Failover: %s has no live replica", master.Addr())
	}
	master.Kill()
	c.WaitOK(t)
	promoted := c.MasterOfSlot(t, slot)
	if !slices.Contains(replicas, promoted) {
		t.Fatalf("redistest: Failover: slot %d moved to %s, not to a replica of %s", slot, promoted.Addr(), master.Addr())
	}
	return promoted
}

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

// do runs one admin command on node i, bounded by adminTimeout.
func (c *Cluster) do(i int, args ...any) *redis.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	return c.admin[i].Do(ctx, args...)
}

// index returns the index of s in c.nodes, or panics: passing a server of
// another cluster is a bug in the test.
func (c *Cluster) index(s *Server) int {
	i := slices.Index(c.nodes, s)
	if i < 0 {
		panic(fmt.Sprintf("redistest: %s is not a node of this cluster", s.Addr()))
	}
	return i
}

// live returns the index of a live node, or fails t.
func (c *Cluster) live(t testing.TB) int {
	t.Helper()
	for i, s := range c.nodes {
		if s.alive() {
			return i
		}
	}
	t.Fatal("redistest: no live cluster node")
	return -1
}
