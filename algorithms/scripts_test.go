package algorithms

import (
	"crypto/sha1"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/internal/luasrc"
)

// TestScripts checks that every script file lua/*.lua is a script of the
// package under its name, that its text is built whole (no include line
// left, every fragment of lua/lib used), the same at every build, and named
// by the SHA-1 of that text, and that a real redis-server and miniredis
// both compile it and name it by the same SHA-1.
func TestScripts(t *testing.T) {
	files, err := fs.Glob(luaFiles, "lua/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	if len(files) != len(scriptNames) {
		t.Errorf("%d script files, %d scripts", len(files), len(scriptNames))
	}
	frags, err := fs.Glob(luaFiles, "lua/lib/*.lua")
	if err != nil || len(frags) == 0 {
		t.Fatalf("no fragments: %v", err)
	}
	unused := map[string]bool{}
	for _, f := range frags {
		unused[strings.TrimPrefix(f, "lua/")] = true
	}
	_, real, _ := realServer(t)
	mini := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { _ = mini.Close() })
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".lua")
		src, err := scriptSource(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again, _ := scriptSource(name); again != src {
			t.Errorf("%s: two builds differ", name)
		}
		if strings.Contains(src, luasrc.Directive) {
			t.Errorf("%s: an include line is left", name)
		}
		if !strings.HasPrefix(src, "-- "+name+".lua: ") {
			t.Errorf("%s: the text does not open with the file's header", name)
		}
		sum := sha1.Sum([]byte(src))
		sha := hex.EncodeToString(sum[:])
		if got, ok := ScriptName(sha); !ok || got != name {
			t.Errorf("ScriptName(sha1 of %s) = %q, %v; want %q, true", name, got, ok, name)
		}
		for server, rdb := range map[string]*redis.Client{"redis-server": real, "miniredis": mini} {
			if got, err := rdb.ScriptLoad(t.Context(), src).Result(); err != nil || got != sha {
				t.Errorf("%s: SCRIPT LOAD %s = %q, %v; want %s", server, name, got, err, sha)
			}
		}
	}
	for _, f := range append(files, frags...) {
		raw, err := luaFiles.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(raw)) {
			if frag, ok := strings.CutPrefix(line, luasrc.Directive); ok {
				delete(unused, strings.TrimSpace(frag))
			}
		}
	}
	for f := range unused {
		t.Errorf("fragment %s: no script file includes it", f)
	}
}
