package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseProbeSources(t *testing.T) {
	got, err := parseProbeSources("10.20.1.1, 10.10.0.11")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.20.1.1"), netip.MustParseAddr("10.10.0.11")}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"fd00::1", "10.0.0", "10.0.0.1,,"} {
		if _, err := parseProbeSources(bad); err == nil || !strings.Contains(err.Error(), "--probe-sources") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if _, err := parseProbeSources(""); err != nil {
		t.Fatalf("default: %v", err)
	}
}

func TestRunRejectsMissingFlags(t *testing.T) {
	if err := run(t.Context(), []string{"--node-name", "n"}); err == nil || !strings.Contains(err.Error(), "--config-dir") {
		t.Fatalf("err = %v", err)
	}
}
