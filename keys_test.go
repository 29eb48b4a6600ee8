package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// trickyKeys are client keys that a naive encoding would get wrong: braces
// that would move the hash tag, the separator, the escape character,
// spaces, binary bytes and multi-byte UTF-8.
var trickyKeys = []string{
	"alice",
	"203.0.113.7",
	"2001:db8::1",
	"user:42",
	"{",
	"}",
	"{}",
	"}{",
	"{user}",
	"a{b}c",
	"{{a}}",
	"c:alice",
	"c:alice}:tb",
	"}:tb",
	"%",
	"%7B",
	"%7b",
	"100%",
	"%%",
	"a b",
	" ",
	"\t\r\n",
	"\x00",
	"\x00\x01\xff",
	"\x7f",
	"\xff",
	"\xc3",
	"é",
	"日本語",
	"🔑",
	"~!@#$^&*()_+-=[]|\\;'\",./<>?`",
	strings.Repeat("{", MaxKeyLen),
	strings.Repeat("\xff", MaxKeyLen),
	strings.Repeat("k", MaxKeyLen),
}

// stateNames are the per-client state names the algorithms use, plus a few
// awkward ones.
var stateNames = []string{"token_bucket", "gcra", "fixed_window", "sliding_window", "tb", "lease", "", "}", "{x}", ":"}

// refEscape is the documented escaping, written independently of escapeTo:
// every byte except printable ASCII other than '%', '{' and '}' becomes %XX
// with upper-case hex digits. (Space is escaped too.)
func refEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > 0x20 && c < 0x7f && c != '%' && c != '{' && c != '}' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// decodeRedisKey inverts Keyspace.ClientKey for the given prefix: it
// returns the client key and the state name. It accepts only the canonical form (upper-case hex,
// nothing escaped that need not be), so a successful decode of every
// produced key is a proof that the encoding is injective.
func decodeRedisKey(prefix, rk string) (key, name string, err error) {
	rest, ok := strings.CutPrefix(rk, prefix)
	if !ok {
		return "", "", fmt.Errorf("missing prefix %q", prefix)
	}
	rest, ok = strings.CutPrefix(rest, "{c:")
	if !ok {
		return "", "", fmt.Errorf("missing {c: after the prefix")
	}
	end := strings.IndexByte(rest, '}')
	if end < 0 {
		return "", "", fmt.Errorf("unterminated hash tag")
	}
	esc, tail := rest[:end], rest[end+1:]
	name, ok = strings.CutPrefix(tail, ":")
	if !ok {
		return "", "", fmt.Errorf("no ':' after the hash tag")
	}
	var b strings.Builder
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		if c != '%' {
			if c <= 0x20 || c >= 0x7f || c == '{' {
				return "", "", fmt.Errorf("raw byte %#x at %d must be escaped", c, i)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(esc) {
			return "", "", fmt.Errorf("truncated escape at %d", i)
		}
		hi, lo := unhex(esc[i+1]), unhex(esc[i+2])
		if hi < 0 || lo < 0 {
			return "", "", fmt.Errorf("bad escape %q at %d", esc[i:i+3], i)
		}
		d := byte(hi<<4 | lo)
		if d > 0x20 && d < 0x7f && d != '%' && d != '{' && d != '}' {
			return "", "", fmt.Errorf("needlessly escaped byte %q at %d", d, i)
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), name, nil
}

// unhex accepts upper-case hex digits only, the canonical form.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"empty", "", false},
		{"one byte", "a", true},
		{"binary", "\x00", true},
		{"braces", "{}", true},
		{"MaxKeyLen", strings.Repeat("x", MaxKeyLen), true},
		{"MaxKeyLen+1", strings.Repeat("x", MaxKeyLen+1), false},
		{"MaxKeyLen in multi-byte runes", strings.Repeat("é", MaxKeyLen/2), true},
		{"MaxKeyLen+1 bytes, fewer runes", strings.Repeat("é", MaxKeyLen/2) + "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKey(tt.key)
			if tt.ok && err != nil {
				t.Fatalf("ValidateKey = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateKey = %v, want an error matching ErrInvalidKey", err)
			}
		})
	}
}

func TestNewKeyspace(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"rl:", true},
		{"myapp:prod:", true},
		{"with space ", true},
		{strings.Repeat("p", 64), true},
		{strings.Repeat("p", 65), false},
		{"{", false},
		{"}", false},
		{"{tenant}:", false},
		{"a{b", false},
		{"a}b", false},
	}
	for _, tt := range tests {
		ks, err := NewKeyspace(tt.prefix)
		if !tt.ok {
			if err == nil {
				t.Errorf("NewKeyspace(%q) = nil error, want a rejection", tt.prefix)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewKeyspace(%q) = %v, want nil", tt.prefix, err)
			continue
		}
		if got := ks.Prefix(); got != tt.prefix {
			t.Errorf("NewKeyspace(%q).Prefix() = %q", tt.prefix, got)
		}
	}

	var zero Keyspace
	if got := zero.Prefix(); got != DefaultPrefix {
		t.Errorf("zero Keyspace Prefix() = %q, want %q", got, DefaultPrefix)
	}
}

func TestClientKey(t *testing.T) {
	app, err := NewKeyspace("app:")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewKeyspace("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ks   Keyspace
		key  string
		name string
		want string
	}{
		{Keyspace{}, "alice", "tb", "rl:{c:alice}:tb"},
		{app, "alice", "gcra", "app:{c:alice}:gcra"},
		{empty, "alice", "gcra", "{c:alice}:gcra"},
		{Keyspace{}, "user:42", "tb", "rl:{c:user:42}:tb"},
		{Keyspace{}, "a{b}c", "tb", "rl:{c:a%7Bb%7Dc}:tb"},
		{Keyspace{}, "{}", "tb", "rl:{c:%7B%7D}:tb"},
		{Keyspace{}, "}:tb", "tb", "rl:{c:%7D:tb}:tb"},
		{Keyspace{}, "100%", "tb", "rl:{c:100%25}:tb"},
		{Keyspace{}, "%7B", "tb", "rl:{c:%257B}:tb"},
		{Keyspace{}, "a b", "tb", "rl:{c:a%20b}:tb"},
		{Keyspace{}, "\x00\x1f\x7f\xff", "tb", "rl:{c:%00%1F%7F%FF}:tb"},
		{Keyspace{}, "é", "tb", "rl:{c:%C3%A9}:tb"},
		{Keyspace{}, "~!", "tb", "rl:{c:~!}:tb"},
	}
	for _, tt := range tests {
		got, err := tt.ks.ClientKey(tt.key, tt.name)
		if err != nil {
			t.Errorf("key %q: %v", tt.key, err)
			continue
		}
		if got != tt.want {
			t.Errorf("key %q, name %q: got %q, want %q", tt.key, tt.name, got, tt.want)
		}
	}
}

func TestClientKeyRejectsInvalidKeys(t *testing.T) {
	var ks Keyspace
	for _, key := range []string{"", strings.Repeat("x", MaxKeyLen+1)} {
		if rk, err := ks.ClientKey(key, "tb"); !errors.Is(err, ErrInvalidKey) || rk != "" {
			t.Errorf("ClientKey(%d bytes) = %q, %v; want ErrInvalidKey", len(key), rk, err)
		}
	}
}

func TestHashTag(t *testing.T) {
	// The examples of the Redis Cluster specification, and a few more.
	tests := []struct {
		key, want string
	}{
		{"{user1000}.following", "user1000"},
		{"{user1000}.followers", "user1000"},
		{"foo{}{bar}", "foo{}{bar}"},
		{"foo{{bar}}zap", "{bar"},
		{"foo{bar}{zap}", "bar"},
		{"plain", "plain"},
		{"", ""},
		{"a{b", "a{b"},
		{"a}b{c}", "c"},
		{"{}", "{}"},
		{"{a}", "a"},
		{"rl:{c:alice}:tb", "c:alice"},
	}
	for _, tt := range tests {
		if got := HashTag(tt.key); got != tt.want {
			t.Errorf("HashTag(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestKeysShareHashTag checks that every Redis key of one client has the
// escaped client key region as its hash tag, whatever the prefix and name.
func TestKeysShareHashTag(t *testing.T) {
	var keyspaces []Keyspace
	for _, p := range []string{"", "rl:", "x:y:", "a b:"} {
		ks, err := NewKeyspace(p)
		if err != nil {
			t.Fatal(err)
		}
		keyspaces = append(keyspaces, ks)
	}
	keyspaces = append(keyspaces, Keyspace{})
	for _, ks := range keyspaces {
		for _, key := range trickyKeys {
			wantClient := "c:" + refEscape(key)
			for _, name := range stateNames {
				ck, err := ks.ClientKey(key, name)
				if err != nil {
					t.Fatalf("ClientKey(%q, %q): %v", key, name, err)
				}
				if got := HashTag(ck); got != wantClient {
					t.Errorf("HashTag(%q) = %q, want %q", ck, got, wantClient)
				}
			}
		}
	}
}

// TestKeysInjective checks that no two distinct (key, name) pairs
// map to one Redis key, over the tricky keys and every key of one or two
// bytes drawn from an alphabet of escape-relevant bytes, and that every
// Redis key decodes back to what made it.
func TestKeysInjective(t *testing.T) {
	alphabet := []string{"%", "{", "}", ":", " ", "2", "5", "7", "B", "D", "c", "\x00", "\xff"}
	keys := append([]string(nil), trickyKeys...)
	for _, a := range alphabet {
		keys = append(keys, a)
		for _, b := range alphabet {
			keys = append(keys, a+b)
		}
	}
	type origin struct{ key, name string }
	ks := Keyspace{}
	seen := make(map[string]origin)
	for _, key := range keys {
		for _, name := range stateNames {
			rk, err := ks.ClientKey(key, name)
			if err != nil {
				t.Fatalf("key %q: %v", key, err)
			}
			o := origin{key, name}
			if prev, dup := seen[rk]; dup && prev != o {
				t.Fatalf("%+v and %+v both map to %q", prev, o, rk)
			}
			seen[rk] = o
			gkey, gname, err := decodeRedisKey(ks.Prefix(), rk)
			if err != nil {
				t.Fatalf("decode %q: %v", rk, err)
			}
			if got := (origin{gkey, gname}); got != o {
				t.Fatalf("decode %q = %+v, want %+v", rk, got, o)
			}
		}
	}
}

func FuzzClientKey(f *testing.F) {
	for _, k := range trickyKeys[:len(trickyKeys)-3] {
		f.Add(k, "alice", "tb")
	}
	f.Add("a", "b", "gcra")
	f.Add("%7B", "{", "}")
	f.Add("", "x", "tb")

	app, err := NewKeyspace("app:")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key, other, name string) {
		for _, ks := range []Keyspace{{}, app} {
			ck, err := ks.ClientKey(key, name)
			if ValidateKey(key) != nil {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("ClientKey(%q) = %q, %v; want ErrInvalidKey", key, ck, err)
				}
				if key != "" && len(key) <= MaxKeyLen {
					t.Fatalf("ValidateKey rejected a %d-byte key", len(key))
				}
				return
			}
			if err != nil {
				t.Fatalf("ClientKey(%q, %q): %v", key, name, err)
			}
			// Decoding recovers the input: the encoding is injective.
			gotKey, gotName, err := decodeRedisKey(ks.Prefix(), ck)
			if err != nil {
				t.Fatalf("decode %q: %v", ck, err)
			}
			if gotKey != key || gotName != name {
				t.Fatalf("decode %q = %q %q, want %q %q", ck, gotKey, gotName, key, name)
			}
			for _, b := range []byte(HashTag(ck)) {
				if b <= 0x20 || b >= 0x7f || b == '{' || b == '}' {
					t.Fatalf("hash tag of %q holds byte %#x", ck, b)
				}
			}

			// Single slot: the hash tag is the escaped key region,
			// whatever the state name.
			tag := HashTag(ck)
			if tag != "c:"+refEscape(key) {
				t.Fatalf("HashTag(%q) = %q, want %q", ck, tag, "c:"+refEscape(key))
			}
			for _, n := range []string{"token_bucket", "gcra", "}", "{"} {
				rk, _ := ks.ClientKey(key, n)
				if HashTag(rk) != tag {
					t.Fatalf("%q and %q have different hash tags", ck, rk)
				}
			}

			// Pairwise: a distinct key never shares a Redis key.
			if ValidateKey(other) == nil && other != key {
				if ock, _ := ks.ClientKey(other, name); ock == ck {
					t.Fatalf("keys %q and %q collide", key, other)
				}
			}
		}
	})
}
