package main

import (
	"slices"
	"testing"
)

func TestMissingListeners(t *testing.T) {
	const ss = "LISTEN 0      4096         *:8080      *:*   \nLISTEN 0      5      0.0.0.0:5201 0.0.0.0:*\n"
	tests := []struct {
		name  string
		out   string
		ports []int
		want  []int
	}{
		{"both", ss, []int{5201, 8080}, nil},
		{"one missing", ss, []int{5201, 8079}, []int{8079}},
		{"ipv6 wildcard", "LISTEN 0 5 [::]:5201 [::]:*\n", []int{5201}, nil},
		{"no prefix match", "LISTEN 0 5 *:15201 *:*\n", []int{5201}, []int{5201}},
		{"empty", "", []int{8080}, []int{8080}},
		{"garbage", "ss: command failed\n", []int{8080}, []int{8080}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := missingListeners(tc.out, tc.ports); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestServicePorts: iperf3's port is declared TCP and fortio's HTTP, by name, so a
// waypoint relays the first as bytes and proxies the second as HTTP; each targets the
// server's own port.
func TestServicePorts(t *testing.T) {
	want := map[int32]string{iperfPort: "tcp", fortioPort: "http"}
	if len(servicePorts) != len(want) {
		t.Fatalf("service ports %+v", servicePorts)
	}
	for _, p := range servicePorts {
		if want[p.Port] != p.Name || p.TargetPort != p.Port {
			t.Errorf("port %+v, want name %q and target port %d", p, want[p.Port], p.Port)
		}
	}
}
