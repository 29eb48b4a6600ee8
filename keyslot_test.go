package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the Redis Cluster slot of redisKey, computed from HashTag.
func slot(redisKey string) int64 { return int64(crc16(HashTag(redisKey)) % 16384) }

func TestCRC16(t *testing.T) {
	// The check value of CRC-16/XMODEM, quoted in the Cluster specification.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
}

// TestClusterKeyslot asks a real redis-server (CLUSTER KEYSLOT needs
// cluster mode, though no slots need be assigned) for the slot of every
// Redis key the Keyspace makes from tricky client keys. It checks that
// HashTag agrees with the server, and that all keys of one client share
// one slot.
func TestClusterKeyslot(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	rdb := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Keys that exercise the hash tag rules themselves.
	var redisKeys []string
	redisKeys = append(redisKeys,
		"{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}",
		"plain", "a{b", "a}b{c}", "{}", "{a}", "\x00{\xff}")

	ks, err := NewKeyspace("app:")
	if err != nil {
		t.Fatal(err)
	}
	type group struct{ first, last int } // a client's keys in redisKeys
	var groups []group
	for _, k := range []Keyspace{{}, ks} {
		for _, key := range trickyKeys {
			g := group{first: len(redisKeys)}
			for _, name := range stateNames {
				rk, err := k.ClientKey(key, name)
				if err != nil {
					t.Fatal(err)
				}
				redisKeys = append(redisKeys, rk)
			}
			g.last = len(redisKeys) - 1
			groups = append(groups, g)
		}
	}

	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, rk := range redisKeys {
			p.ClusterKeySlot(ctx, rk)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	slots := make([]int64, len(cmds))
	for i, c := range cmds {
		slots[i] = c.(*redis.IntCmd).Val()
		if want := slot(redisKeys[i]); slots[i] != want {
			t.Errorf("server slot of %q is %d, HashTag gives %d", redisKeys[i], slots[i], want)
		}
	}
	for _, g := range groups {
		for i := g.first + 1; i <= g.last; i++ {
			if slots[i] != slots[g.first] {
				t.Errorf("%q is in slot %d but %q is in slot %d", redisKeys[g.first], slots[g.first], redisKeys[i], slots[i])
			}
		}
	}
}
