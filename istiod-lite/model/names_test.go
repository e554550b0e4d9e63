package model

import (
	"errors"
	"testing"
)

func TestParseWorkloadUID(t *testing.T) {
	tests := []struct {
		in      string
		cluster string
		ns      string
		name    string
		wantErr bool
	}{
		{in: "Kubernetes//Pod/default/web-0", cluster: "Kubernetes", ns: "default", name: "web-0"},
		{in: "c1//Pod/ns/p", cluster: "c1", ns: "ns", name: "p"},
		{in: "Kubernetes//Pod/default", wantErr: true},
		{in: "Kubernetes//Pod//web", wantErr: true},
		{in: "//Pod/ns/web", wantErr: true},
		{in: "Kubernetes//WorkloadEntry/ns/web", wantErr: true},
		{in: "Kubernetes//Pod/ns/a/b", wantErr: true},
		{in: "a/b//Pod/ns/p", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			c, ns, n, err := ParseWorkloadUID(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("err = %v, want ErrInvalidName", err)
				}
				return
			}
			if err != nil || c != tc.cluster || ns != tc.ns || n != tc.name {
				t.Fatalf("= %q %q %q %v", c, ns, n, err)
			}
		})
	}
}

func TestParseServiceName(t *testing.T) {
	tests := []struct {
		in      string
		ns      string
		host    string
		wantErr bool
	}{
		{in: "shop/reviews.shop.svc.cluster.local", ns: "shop", host: "reviews.shop.svc.cluster.local"},
		{in: "shop/", wantErr: true},
		{in: "/h", wantErr: true},
		{in: "noslash", wantErr: true},
		{in: "a/b/c", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ns, h, err := ParseServiceName(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("err = %v, want ErrInvalidName", err)
				}
				return
			}
			if err != nil || ns != tc.ns || h != tc.host {
				t.Fatalf("= %q %q %v", ns, h, err)
			}
		})
	}
}

// FuzzParseWorkloadUID checks the parser never panics and that whatever it accepts
// round-trips through WorkloadUID.
func FuzzParseWorkloadUID(f *testing.F) {
	for _, s := range []string{"Kubernetes//Pod/default/web-0", "//Pod//", "a//Pod/b/c/d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ns, n, err := ParseWorkloadUID(s)
		if err != nil {
			return
		}
		if got := WorkloadUID(c, ns, n); got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	})
}

// FuzzParseServiceName checks the parser never panics and round-trips what it accepts.
func FuzzParseServiceName(f *testing.F) {
	for _, s := range []string{"ns/host", "/", "a/b/c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, h, err := ParseServiceName(s)
		if err != nil {
			return
		}
		if got := ServiceName(ns, h); got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	})
}
