package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	required := []string{"--proxy", "10.0.0.1:15008", "--target", "10.0.0.1:8080", "--cert", "c", "--key", "k", "--root", "r"}
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" means success
	}{
		{name: "all required", args: required},
		{name: "raw with timeout", args: append(append([]string{}, required...), "--raw", "--send", "x", "--timeout", "5s")},
		{name: "no flags", args: nil, wantErr: "--proxy is required"},
		{name: "missing root", args: required[:8], wantErr: "--root is required"},
		{name: "extra argument", args: append(append([]string{}, required...), "stray"), wantErr: "unexpected arguments"},
		{name: "zero timeout", args: append(append([]string{}, required...), "--timeout", "0s"), wantErr: "--timeout must be positive"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "parse flags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr == "" {
				if err != nil || o.proxy != "10.0.0.1:15008" || o.target != "10.0.0.1:8080" {
					t.Fatalf("parseFlags = %+v, %v; want the given addresses", o, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseFlags error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
