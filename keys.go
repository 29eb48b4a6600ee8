package ratelimit

import (
	"fmt"
	"strings"
)

// MaxKeyLen is the longest client key, in bytes, that limiters accept.
const MaxKeyLen = 512

// DefaultPrefix is the namespace a [Keyspace] uses when none is given.
const DefaultPrefix = "rl:"

// ValidateKey reports whether key is a usable client key: non-empty and at
// most MaxKeyLen bytes. Any bytes are allowed, including braces, colons and
// binary data. The error wraps [ErrInvalidKey].
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	return nil
}

// A Keyspace turns client keys into Redis keys under a namespace prefix.
//
// Every Redis key it makes has the form
//
//	<prefix>{c:<escaped client key>}:<name>
//
// where the escaping replaces '%', '{', '}', the space, and every byte outside the
// printable ASCII range by %XX. The escaped key therefore contains no brace,
// so the part between the braces is the Redis Cluster hash tag: all Redis
// keys of one client share a slot, whatever bytes the client key holds. The
// escaping is injective, so two distinct client keys never share a Redis
// key.
//
// The zero value uses [DefaultPrefix]. A Keyspace is a plain value, safe
// for concurrent use.
type Keyspace struct {
	prefix string
	set    bool
}

// NewKeyspace returns a Keyspace with the given prefix, which must not
// contain '{' or '}' (they would move the hash tag) and must be at most 64
// bytes. An empty prefix is allowed.
func NewKeyspace(prefix string) (Keyspace, error) {
	if strings.ContainsAny(prefix, "{}") {
		return Keyspace{}, fmt.Errorf("ratelimit: key prefix %q must not contain '{' or '}'", prefix)
	}
	if len(prefix) > 64 {
		return Keyspace{}, fmt.Errorf("ratelimit: key prefix of %d bytes exceeds 64", len(prefix))
	}
	return Keyspace{prefix: prefix, set: true}, nil
}

// Prefix returns the namespace prefix.
func (k Keyspace) Prefix() string {
	if !k.set {
		return DefaultPrefix
	}
	return k.prefix
}

// ClientKey returns the Redis key that holds state name (such as "tb" for a
// token bucket) of client key. It fails with [ErrInvalidKey] when key fails
// [ValidateKey].
func (k Keyspace) ClientKey(key, name string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	p := k.Prefix()
	var b strings.Builder
	b.Grow(len(p) + len("{c:") + len(key) + len("}:") + len(name) + 16)
	b.WriteString(p)
	b.WriteString("{c:")
	escapeTo(&b, key)
	b.WriteString("}:")
	b.WriteString(name)
	return b.String(), nil
}

// HashTag returns the part of redisKey that Redis Cluster hashes: the bytes
// between the first '{' and the next '}', if that is non-empty, else the
// whole key. It follows the Redis Cluster specification.
func HashTag(redisKey string) string {
	start := strings.IndexByte(redisKey, '{')
	if start < 0 {
		return redisKey
	}
	end := strings.IndexByte(redisKey[start+1:], '}')
	if end <= 0 {
		return redisKey
	}
	return redisKey[start+1 : start+1+end]
}

const hexDigits = "0123456789ABCDEF"

func escapeTo(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '{' || c == '}' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
}
