package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunEmbedded(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-duration", "1500ms"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	// The per-second lines are not checked: on a loaded machine the run
	// may end before the first one.
	for _, want := range []string{"embedded redis", "admitted vs ideal", "alice", "bob", "carol"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-h"}, 0, "Usage: demo"},
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{"-duration", "0s"}, 2, "-duration"},
		{[]string{"-duration", "1h"}, 2, "-duration"},
		{[]string{"-rate", "0"}, 2, "invalid limit"},
		{[]string{"extra"}, 2, "unexpected argument"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.msg) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, errOut.String(), tt.code, tt.msg)
		}
	}
}
