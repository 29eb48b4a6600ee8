package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
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
