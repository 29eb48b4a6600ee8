package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRunBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string // in stderr
	}{
		{[]string{"-h"}, 0, "Usage: go run ./cmd/demo"},
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{"-duration", "x"}, 2, "invalid value"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-mode", "fast"}, 2, `-mode "fast": want lease, direct or both`},
		{[]string{"-duration", "0s"}, 2, "-duration 0s: must be positive and at most 1m0s"},
		{[]string{"-duration", "2m"}, 2, "at most 1m0s"},
		{[]string{"-http", "127.0.0.1:0", "-duration", "2h"}, 2, "at most 1h0m0s"},
		{[]string{"-instances", "0"}, 2, "-instances 0: must be between 1 and 16"},
		{[]string{"-instances", "17"}, 2, "-instances 17"},
		{[]string{"-timeout", "0s"}, 2, "-timeout 0s"},
		{[]string{"-timeout", "-1s"}, 2, "-timeout -1s"},
		{[]string{"-keyspace", "shop"}, 2, "-keyspace applies to -http"},
		{[]string{"-http", "127.0.0.1:0", "-keyspace", "a b"}, 2, `-keyspace "a b": want 1 to 32 letters`},
		{[]string{"-http", "127.0.0.1:0", "-keyspace", ""}, 2, `-keyspace "": want 1 to 32`},
		{[]string{"-metrics", "statsd"}, 2, `-metrics "statsd": want off, stdout or prometheus`},
		{[]string{"-redis", "localhost"}, 2, `-redis "localhost": want host:port`},
		{[]string{"-redis", "127.0.0.1:http"}, 2, `bad port "http"`},
		{[]string{"-redis", "10.0.0.7:6379"}, 2, "is not a loopback address; the demo uses only this machine"},
		{[]string{"-redis", "127.0.0.1:7000,redis.example.com:7001"}, 2, `-redis "redis.example.com:7001"`},
		{[]string{"-redis", " , "}, 2, "names no address"},
		{[]string{"-http", ":8080"}, 2, "means every network interface"},
		{[]string{"-metrics", "prometheus", "-metrics-addr", "0.0.0.0:9464"}, 2, "-metrics-addr"},
		{[]string{"-config", "/nonexistent/tiers.yaml"}, 1, "no such file"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.msg) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, errOut.String(), tt.code, tt.msg)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode != modeBoth || o.duration != defaultDuration || o.instances != 3 || o.timeout != 0 ||
		o.metrics != metricsOff || len(o.redis) != 0 || o.untilStop || o.keyspace != "" {
		t.Errorf("defaults = %+v", o)
	}
	if got := o.modes(); len(got) != 2 || got[0] != modeLease || got[1] != modeDirect {
		t.Errorf("modes() = %q, want lease then direct", got)
	}

	o, err = parseFlags([]string{"-redis", "127.0.0.1:7000, [::1]:7001,localhost:7002", "-mode", "direct"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.redis) != 3 || o.redis[1] != "[::1]:7001" || len(o.modes()) != 1 {
		t.Errorf("cluster flags = %+v", o)
	}

	o, err = parseFlags([]string{"-redis", "10.0.0.7:6379", "-http", ":8080", "-allow-remote"}, io.Discard)
	if err != nil {
		t.Errorf("-allow-remote: %v", err)
	}
	if !o.untilStop || o.duration != maxHTTPDuration || o.keyspace != httpKeyspace {
		t.Errorf("-http without -duration: untilStop %v, duration %v, keyspace %q", o.untilStop, o.duration, o.keyspace)
	}
	o, err = parseFlags([]string{"-http", "localhost:0", "-keyspace", "shop-1.v2_x"}, io.Discard)
	if err != nil || o.keyspace != "shop-1.v2_x" {
		t.Errorf("-keyspace: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-http", "localhost:0", "-duration", "20m"}, io.Discard)
	if err != nil || o.untilStop || o.duration != 20*time.Minute {
		t.Errorf("-http -duration 20m: %+v, %v", o, err)
	}
}
