package redirect

import (
	"errors"
	"net/netip"
	"testing"
)

func TestConfigMarshal(t *testing.T) {
	pod := netip.MustParseAddr("10.1.2.3")
	good := Config{PodIP: pod, LoIfindex: 1, Mark: 0x53b, HBONEPort: 15008,
		ProbeSources: []netip.Addr{netip.MustParseAddr("10.1.2.1"), netip.MustParseAddr("::ffff:169.254.7.127")}}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "no probes", mutate: func(c *Config) { c.ProbeSources = nil }},
		{name: "zero pod ip", mutate: func(c *Config) { c.PodIP = netip.Addr{} }, wantErr: true},
		{name: "unspecified pod ip", mutate: func(c *Config) { c.PodIP = netip.IPv4Unspecified() }, wantErr: true},
		{name: "ipv6 pod ip", mutate: func(c *Config) { c.PodIP = netip.MustParseAddr("fd00::1") }, wantErr: true},
		{name: "no lo", mutate: func(c *Config) { c.LoIfindex = 0 }, wantErr: true},
		{name: "no hbone port", mutate: func(c *Config) { c.HBONEPort = 0 }, wantErr: true},
		{name: "ipv6 probe", mutate: func(c *Config) { c.ProbeSources = []netip.Addr{netip.MustParseAddr("fd00::2")} }, wantErr: true},
		{name: "too many probes", mutate: func(c *Config) {
			c.ProbeSources = []netip.Addr{pod, pod, pod, pod, pod}
		}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.ProbeSources = append([]netip.Addr(nil), good.ProbeSources...)
			tc.mutate(&c)
			got, err := c.marshal()
			if tc.wantErr {
				if !errors.Is(err, ErrBadConfig) {
					t.Fatalf("marshal: err = %v, want ErrBadConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if got.PodIp != ipv4NetworkOrder(c.PodIP) || got.LoIfindex != 1 || got.Mark != 0x53b || got.HbonePort != 15008 {
				t.Fatalf("marshal = %+v", got)
			}
		})
	}
}

func TestIPv4NetworkOrder(t *testing.T) {
	// The kernel's __be32 for 10.1.2.3 has bytes 0a 01 02 03 in memory.
	v := ipv4NetworkOrder(netip.MustParseAddr("10.1.2.3"))
	b := [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	if b != [4]byte{10, 1, 2, 3} {
		t.Fatalf("memory layout = %v", b)
	}
}

func TestSpecShape(t *testing.T) {
	spec, err := loadBpf()
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	lst := spec.Maps[bpfMapListeners]
	if lst == nil || lst.MaxEntries != 2 || lst.KeySize != 4 || lst.ValueSize != 8 {
		t.Fatalf("listeners map spec = %+v", lst)
	}
	for _, name := range []string{bpfProgAmbitSkLookup, bpfProgAmbitConnect4} {
		if spec.Programs[name] == nil {
			t.Fatalf("program %s missing", name)
		}
	}
}
