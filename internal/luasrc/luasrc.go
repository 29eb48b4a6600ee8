// Package luasrc builds the text of a Redis script from Lua files that
// include shared fragments. Redis runs each script on its own, with no
// require or module system, so scripts that share code (the exact
// arithmetic, the reading of a key's state) would otherwise repeat it; a
// script file instead names the fragments it needs, one per line:
//
//	-- #include lib/muldiv.lua
//
// and Expand replaces each such line with the fragment's text, itself
// expanded. The result depends only on the files, so a script's SHA-1,
// as EVALSHA names it, is the same in every process built from them.
package luasrc

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Directive opens a line that includes a fragment; the rest of the line
// is the fragment's path, relative to the root of the file system.
const Directive = "-- #include "

// maxDepth bounds how deeply fragments may include fragments, so that a
// cycle is an error rather than an endless expansion.
const maxDepth = 8

// Expand returns the text of the file name in fsys with every include
// line replaced by the expanded text of the fragment it names.
func Expand(fsys fs.FS, name string) (string, error) {
	var b strings.Builder
	if err := expand(&b, fsys, name, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func expand(b *strings.Builder, fsys fs.FS, name string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("luasrc: %s: includes nested deeper than %d", name, maxDepth)
	}
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("luasrc: %w", err)
	}
	for line := range strings.Lines(string(src)) {
		frag, ok := strings.CutPrefix(line, Directive)
		if !ok {
			b.WriteString(line)
			continue
		}
		frag = path.Clean(strings.TrimSpace(frag))
		if err := expand(b, fsys, frag, depth+1); err != nil {
			return fmt.Errorf("%w (included by %s)", err, name)
		}
		// The include line's newline ends the fragment, whether or not
		// its last line has one: the includer's next line must not be
		// joined to it (after a comment, it would vanish into it).
		if s := b.String(); s != "" && s[len(s)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return nil
}
