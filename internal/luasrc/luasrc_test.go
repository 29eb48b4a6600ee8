package luasrc

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestExpand checks that include lines give way to the fragments they
// name, fragments that include others included, and that a missing
// fragment or a cycle is an error that names the files.
func TestExpand(t *testing.T) {
	fsys := fstest.MapFS{
		"a.lua":       {Data: []byte("-- a\n-- #include lib/b.lua\nreturn x\n")},
		"lib/b.lua":   {Data: []byte("-- #include lib/c.lua\nlocal x = y + 1\n")},
		"lib/c.lua":   {Data: []byte("local y = 1\n")},
		"missing.lua": {Data: []byte("-- #include lib/none.lua\n")},
		"loop.lua":    {Data: []byte("-- #include loop.lua\n")},
		"plain.lua":   {Data: []byte("-- #includes nothing\nreturn 1")},
	}
	for _, tc := range []struct{ name, want string }{
		{"a.lua", "-- a\nlocal y = 1\nlocal x = y + 1\nreturn x\n"},
		{"plain.lua", "-- #includes nothing\nreturn 1"},
	} {
		if got, err := Expand(fsys, tc.name); err != nil || got != tc.want {
			t.Errorf("Expand(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := Expand(fsys, "missing.lua"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.lua") {
		t.Errorf("Expand(missing.lua): %v, want a missing file named with its includer", err)
	}
	if _, err := Expand(fsys, "loop.lua"); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("Expand(loop.lua): %v, want too deep an include", err)
	}
}

// TestExpandFragmentWithoutNewline checks that a fragment whose last line
// has no newline still ends its line: the includer's next line must not be
// joined to it (after a closing comment, it would vanish into the comment).
func TestExpandFragmentWithoutNewline(t *testing.T) {
	fsys := fstest.MapFS{
		"a.lua":     {Data: []byte("-- #include lib/b.lua\nreturn x\n")},
		"lib/b.lua": {Data: []byte("local x = 1 -- no newline after this comment")},
	}
	want := "local x = 1 -- no newline after this comment\nreturn x\n"
	if got, err := Expand(fsys, "a.lua"); err != nil || got != want {
		t.Errorf("Expand(a.lua) = %q, %v; want %q", got, err, want)
	}
}
