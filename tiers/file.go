package tiers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// MaxConfigSize is the largest config file, in bytes, that [Parse] and
// [LoadFile] accept: 1 MiB, room for some 25,000 clients. Decoding and
// checking YAML allocates up to some 150 times the size of its input, and
// a watched file is read again on every change, so the size is bounded; a
// larger set of clients belongs in a [Resolver].
const MaxConfigSize = 1 << 20

// maxProblems is the most problems that the error of Parse lists; a last
// one counts the rest.
const maxProblems = 100

// LoadFile reads and validates the YAML config file at path. See [Parse]
// for the format. It reads no more of the file than [MaxConfigSize] allows.
func LoadFile(path string) (Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(path, data)
}

// readConfigFile returns the contents of the file at path, or, of a file
// larger than MaxConfigSize, its first MaxConfigSize + 1 bytes, which Parse
// then refuses.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tiers: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("tiers: %w", err)
	}
	return data, nil
}

// Parse reads and validates a YAML config. name is the file name to use
// in errors.
//
// The format, with every field:
//
//	default_tier: free            # optional: the tier of unknown clients
//	tiers:
//	  free:                       # tier name
//	    limits:                   # checked in this order (client limits first)
//	      second:                 # limit name
//	        rate: 5               # required, positive
//	        period: 1s            # required: a Go duration, or whole days such as 1d
//	        burst: 10             # optional, positive; default: rate
//	        scope: client         # optional: client (default) or tier
//	        algorithm: gcra       # optional: token_bucket, gcra, fixed_window, sliding_window
//	        lease: false          # optional: lease tokens locally (see Factory)
//	      day:                    # a calendar quota
//	        rate: 1000            # requests per calendar day
//	        period: day           # day, week (from Monday) or month (from the 1st)
//	        timezone: Europe/Paris # optional: an IANA zone; default UTC
//	clients:                      # optional: client key -> tier
//	  key-123: pro
//	overrides:                    # optional: client key -> custom limits
//	  acme:
//	    tier: pro                 # optional: default: the client's tier in clients, or default_tier
//	    limits:
//	      second: {rate: 500, period: 1s}
//
// Decoding is strict. Unknown fields, duplicate keys (such as a tier
// defined twice), values of the wrong type, zero or negative numbers and
// durations, numbers with a leading zero (010, which YAML 1.1 reads as
// octal 8 and YAML 1.2 as 10), unparsable durations and unknown tier or
// algorithm names are errors. The error joins one [*ConfigError] per problem, each naming the
// file, line, column and field, in file order; after 100 problems a last
// one counts the rest.
//
// A period of day, week or month (not a duration such as 1d, which counts
// in windows of 24 hours from the Unix epoch) makes a calendar quota: the
// limit runs [algorithms.CalendarWindow] in the zone that timezone names
// (time.LoadLocation; the program needs the tz database, from the system
// or by importing time/tzdata). Its algorithm may only be calendar_window,
// its burst only its rate, and it cannot lease; timezone is refused with
// any other period, as are an unknown zone, an empty one and "Local".
//
// A config from an untrusted source cannot make Parse allocate more than a
// bounded multiple of its size: data may hold at most [MaxConfigSize]
// bytes; YAML aliases (*name), which would let a small file repeat a large
// part of itself many times, are refused, as are merge keys (<<), which
// use them; and a key longer than any name or client key can be (512
// bytes) is refused before anything is read under it.
func Parse(name string, data []byte) (Config, error) {
	if len(data) > MaxConfigSize {
		return Config{}, &ConfigError{File: name, Line: 1 + lineBreaks(data[:MaxConfigSize]),
			Msg: fmt.Sprintf("the config file is larger than the maximum of %d bytes (MaxConfigSize)", MaxConfigSize)}
	}
	r := &reader{
		file: name,
		pos:  make(map[string][2]int),
		is:   &issues{skip: make(map[string]bool)},
	}
	r.is.pos = r.position
	r.is.suppress = r.consequence

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, &ConfigError{File: name, Msg: "empty config file"}
		}
		return Config{}, r.syntaxError(err, data)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return Config{}, r.syntaxError(err, data)
		}
		return Config{}, &ConfigError{File: name, Line: extra.Line, Column: extra.Column,
			Msg: "a config file holds one YAML document; found a second"}
	}
	root := doc.Content[0]
	if err := r.aliases(root); err != nil {
		return Config{}, err
	}
	r.pos[""] = [2]int{root.Line, root.Column}

	cfg := r.config(root)
	cfg.validate(r.is)
	if r.is.err() != nil { // sorts the problems in file order
		return Config{}, r.capped(r.is.list)
	}
	return cfg, nil
}

// aliases returns one ConfigError for each alias in the document under
// root, or nil if it has none. Only the tree that yaml.v3 decoded is
// walked, once, never an alias's target.
func (r *reader) aliases(root *yaml.Node) error {
	var list []*ConfigError
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Kind == yaml.AliasNode {
			msg := fmt.Sprintf("YAML aliases are not supported: write out the value that *%s refers to", n.Value)
			if n.Alias != nil {
				msg += fmt.Sprintf(" (anchored at line %d)", n.Alias.Line)
			}
			list = append(list, &ConfigError{File: r.file, Line: n.Line, Column: n.Column, Msg: msg})
			continue
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
	if len(list) == 0 {
		return nil
	}
	return r.capped(list)
}

// capped joins list, which is in file order, keeping the first
// maxProblems problems and counting the rest in one more.
func (r *reader) capped(list []*ConfigError) error {
	errs := make([]error, 0, min(len(list), maxProblems+1))
	for i, e := range list {
		if i == maxProblems {
			errs = append(errs, &ConfigError{File: r.file, Line: e.Line, Column: e.Column,
				Msg: fmt.Sprintf("%d more problems not shown", len(list)-maxProblems)})
			break
		}
		errs = append(errs, e)
	}
	return joinErrors(errs)
}
