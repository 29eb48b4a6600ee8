package tiers

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

// This file is the one place that reads the text of yaml.v3's errors.
// go.yaml.in/yaml/v3 reports a syntax error only as a string, "yaml: line
// N: message" (no type, no mark to read), with N counted differently by
// its scanner and its parser, and left out on line 1; every other problem
// is found on the decoded yaml.Node tree, whose nodes carry their line and
// column (see reader).

// yamlLine matches the text of a yaml.v3 syntax error that names a line.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of yaml's parser (as opposed to its
// scanner), whose line numbers it reports counting from 0: the line where
// the construct in error starts, minus one.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError turns a syntax error of yaml.v3 into a ConfigError placed
// on a line of data.
func (r *reader) syntaxError(err error, data []byte) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserProblems[m[2]] {
			line++
		}
		return &ConfigError{File: r.file, Line: min(line, lineCount(data)), Msg: "invalid YAML: " + m[2]}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &ConfigError{File: r.file, Line: unmarkedLine(msg, data), Msg: "invalid YAML: " + msg}
}

// unmarkedLine finds the line of a yaml.v3 error that names none. The
// parser leaves out "line N:" when its mark is on the first line; the
// errors that carry no mark at all (an unknown anchor, a control
// character) are found by searching the text for what they name.
func unmarkedLine(msg string, data []byte) int {
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			return 1 + lineBreaks(data[:i])
		}
	}
	if strings.Contains(msg, "control characters") {
		if i := bytes.IndexFunc(data, func(c rune) bool { return c < ' ' && c != '\t' && c != '\n' && c != '\r' || c == 0x7f }); i >= 0 {
			return 1 + lineBreaks(data[:i])
		}
	}
	return 1
}

var unknownAnchor = regexp.MustCompile(`unknown anchor '([^']*)'`)

// lineCount returns the number of lines of data, counting a last line
// without a line break, and at least 1.
func lineCount(data []byte) int {
	n := lineBreaks(data)
	if len(data) == 0 || !bytes.HasSuffix(data, []byte("\n")) && !bytes.HasSuffix(data, []byte("\r")) {
		n++
	}
	return max(n, 1)
}

// lineBreaks counts the line breaks in data as YAML does: LF, CR LF, a
// lone CR, NEL, LS and PS.
func lineBreaks(data []byte) int {
	n := 0
	for i, r := range string(data) {
		switch r {
		case '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				n++
			}
		case '\n', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}
