package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string // substring of the error; "" means no error
	}{
		{name: "defaults write docs", args: nil, want: options{out: "docs"}},
		{name: "short writes nothing by default", args: []string{"-short"}, want: options{short: true}},
		{name: "short with -out writes there", args: []string{"-short", "-out", "/tmp/x"}, want: options{short: true, out: "/tmp/x", outSet: true}},
		{name: "out", args: []string{"-out=site"}, want: options{out: "site", outSet: true}},
		{name: "loopback v4", args: []string{"-redis", "127.0.0.1:7000"}, want: options{redis: "127.0.0.1:7000", out: "docs"}},
		{name: "anywhere in 127/8", args: []string{"-redis", "127.1.2.3:7000"}, want: options{redis: "127.1.2.3:7000", out: "docs"}},
		{name: "loopback v6", args: []string{"-redis", "[::1]:7000"}, want: options{redis: "[::1]:7000", out: "docs"}},
		{name: "localhost is pinned to 127.0.0.1", args: []string{"-redis", "LocalHost:7000"}, want: options{redis: "127.0.0.1:7000", out: "docs"}},
		{name: "private address refused", args: []string{"-redis", "10.0.0.1:6379"}, wantErr: "not a loopback address"},
		{name: "unspecified address refused", args: []string{"-redis", "0.0.0.0:6379"}, wantErr: "not a loopback address"},
		{name: "host name refused", args: []string{"-redis", "redis.internal:6379"}, wantErr: "not an IP address or localhost"},
		{name: "missing port", args: []string{"-redis", "127.0.0.1"}, wantErr: "want host:port"},
		{name: "port zero", args: []string{"-redis", "127.0.0.1:0"}, wantErr: "1..65535"},
		{name: "port too large", args: []string{"-redis", "127.0.0.1:70000"}, wantErr: "1..65535"},
		{name: "port not a number", args: []string{"-redis", "127.0.0.1:redis"}, wantErr: "1..65535"},
		{name: "empty out", args: []string{"-out", " "}, wantErr: "-out must name a directory"},
		{name: "unknown flag", args: []string{"-fast"}, wantErr: "flag provided but not defined: -fast (see -h)"},
		{name: "bad bool", args: []string{"-short=maybe"}, wantErr: "invalid boolean value"},
		{name: "positional argument", args: []string{"-short", "now"}, wantErr: `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if got != tt.want {
				t.Errorf("parseFlags(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("parseFlags(%q) printed %q", tt.args, stderr.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stderr bytes.Buffer
		_, err := parseFlags([]string{arg}, &stderr)
		if !errors.Is(err, errHelp) {
			t.Fatalf("%s: error %v, want errHelp", arg, err)
		}
		for _, want := range []string{"Usage: go run ./benchmarks", "-redis ADDR", "-short", "-out DIR", "loopback"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, stderr.String())
			}
		}
	}
}

func TestRealMainExitCodes(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		wantStderr string
	}{
		{[]string{"-h"}, 0, "Usage:"},
		{[]string{"-nope"}, 2, "benchmarks: flag provided but not defined: -nope (see -h)\n"},
		{[]string{"-redis", "192.168.1.5:6379"}, 2, "only loopback servers are allowed"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := realMain(tt.args, &stdout, &stderr); code != tt.code {
			t.Errorf("realMain(%q) = %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tt.wantStderr) {
			t.Errorf("realMain(%q) stderr %q, want it to contain %q", tt.args, stderr.String(), tt.wantStderr)
		}
		if stdout.Len() != 0 {
			t.Errorf("realMain(%q) printed %q to stdout", tt.args, stdout.String())
		}
	}
}
