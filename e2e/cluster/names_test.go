package cluster

import (
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"demo", true},
		{"node-a", true},
		{"a", true},
		{"echo.v1", true},
		{"", false},
		{"-a", false},
		{"a-", false},
		{"A", false},
		{"a/b", false},
		{"..", false},
		{"a b", false},
		{strings.Repeat("a", 40), true},
		{strings.Repeat("a", 41), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validName("pod", tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("validName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v is not ErrInvalidName", err)
			}
		})
	}
}

func TestNodeAddrs(t *testing.T) {
	for _, tc := range []struct {
		idx          int
		ip, cidr, gw string
		wantErr      bool
	}{
		{idx: 1, ip: "10.10.0.11", cidr: "10.20.1.0/24", gw: "10.20.1.1"},
		{idx: 2, ip: "10.10.0.12", cidr: "10.20.2.0/24", gw: "10.20.2.1"},
		{idx: 200, ip: "10.10.0.210", cidr: "10.20.200.0/24", gw: "10.20.200.1"},
		{idx: 0, wantErr: true},
		{idx: 201, wantErr: true},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			ip, cidr, gw, err := nodeAddrs(tc.idx)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("nodeAddrs(%d) succeeded", tc.idx)
				}
				return
			}
			if err != nil || ip.String() != tc.ip || cidr.String() != tc.cidr || gw.String() != tc.gw {
				t.Fatalf("nodeAddrs(%d) = %v %v %v %v", tc.idx, ip, cidr, gw, err)
			}
			if !fabricPrefix.Contains(ip) {
				t.Fatalf("%v outside fabric %v", ip, fabricPrefix)
			}
		})
	}
}

func TestPodAddr(t *testing.T) {
	cidr := netip.MustParsePrefix("10.20.2.0/24")
	for _, tc := range []struct {
		k       int
		want    string
		wantErr bool
	}{
		{k: 0, want: "10.20.2.2"},
		{k: 1, want: "10.20.2.3"},
		{k: 252, want: "10.20.2.254"},
		{k: 253, wantErr: true},
		{k: -1, wantErr: true},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got, err := podAddr(cidr, tc.k)
			if (err != nil) != tc.wantErr || (!tc.wantErr && got.String() != tc.want) {
				t.Fatalf("podAddr(%d) = %v, %v", tc.k, got, err)
			}
		})
	}
}

func TestNewUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newUUID(), newUUID()
	if !re.MatchString(a) || a == b {
		t.Fatalf("newUUID gave %q and %q", a, b)
	}
}

func TestNewRunID(t *testing.T) {
	a, b := newRunID("demo"), newRunID("demo")
	if !strings.HasPrefix(a, "demo-") || len(a) != len("demo-")+6 || a == b {
		t.Fatalf("newRunID gave %q and %q", a, b)
	}
	if err := validName("run", a); err != nil {
		t.Fatalf("run ID %q is not a valid name: %v", a, err)
	}
}
