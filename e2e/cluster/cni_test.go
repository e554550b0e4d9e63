package cluster

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
)

func testPod() *Pod {
	n := &Node{Name: "node-a", Index: 1, IP: netip.MustParseAddr("10.10.0.11"),
		PodCIDR: netip.MustParsePrefix("10.20.1.0/24"), Gateway: netip.MustParseAddr("10.20.1.1")}
	return &Pod{Name: "echo", Namespace: "demo", UID: "0b5e4c9e-1111-4222-8333-444455556666",
		ContainerID: "abc123", IP: netip.MustParseAddr("10.20.1.2"), NetnsPath: "/run/netns/x-pod-demo-echo",
		HostIfName: "veth2", HostMAC: "02:00:00:00:00:01", MAC: "02:00:00:00:00:02", Node: n}
}

func TestCNIStdin(t *testing.T) {
	pod := testPod()
	for _, tc := range []struct {
		name, conf, command string
		wantErr, wantPrev   bool
		wantVersion         string
	}{
		{name: "add", conf: `{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambit-cni","agentSocket":"/x.sock"}`, command: CNIAdd, wantPrev: true, wantVersion: "1.0.0"},
		{name: "del keeps prevResult", conf: `{"name":"n","type":"ambit-cni"}`, command: CNIDel, wantPrev: true, wantVersion: "1.0.0"},
		{name: "version has none", conf: `{"cniVersion":"0.4.0","name":"n","type":"t"}`, command: CNIVersion, wantVersion: "0.4.0"},
		{name: "not json", conf: `{`, command: CNIAdd, wantErr: true},
		{name: "not object", conf: `[1]`, command: CNIAdd, wantErr: true},
		{name: "null", conf: `null`, command: CNIAdd, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cniStdin([]byte(tc.conf), pod, tc.command)
			if (err != nil) != tc.wantErr {
				t.Fatalf("cniStdin err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var got struct {
				CNIVersion  string          `json:"cniVersion"`
				AgentSocket string          `json:"agentSocket"`
				PrevResult  *current.Result `json:"prevResult"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output %s: %v", out, err)
			}
			if got.CNIVersion != tc.wantVersion {
				t.Errorf("cniVersion = %q, want %q", got.CNIVersion, tc.wantVersion)
			}
			if (got.PrevResult != nil) != tc.wantPrev {
				t.Fatalf("prevResult present = %v, want %v: %s", got.PrevResult != nil, tc.wantPrev, out)
			}
			if !tc.wantPrev {
				return
			}
			pr := got.PrevResult
			if len(pr.Interfaces) != 2 || pr.Interfaces[1].Name != "eth0" || pr.Interfaces[1].Sandbox != pod.NetnsPath || pr.Interfaces[1].Mac != pod.MAC {
				t.Errorf("interfaces = %+v", pr.Interfaces)
			}
			if len(pr.IPs) != 1 || pr.IPs[0].Address.String() != "10.20.1.2/24" || pr.IPs[0].Gateway.String() != "10.20.1.1" || *pr.IPs[0].Interface != 1 {
				t.Errorf("ips = %+v", pr.IPs)
			}
			if len(pr.Routes) != 1 || pr.Routes[0].Dst.String() != "0.0.0.0/0" {
				t.Errorf("routes = %+v", pr.Routes)
			}
		})
	}
}

func TestCNIEnv(t *testing.T) {
	env := cniEnv([]string{"PATH=/usr/bin", "CNI_COMMAND=stale", "HOME=/root"}, "/opt/cni/bin/ambit-cni", testPod(), CNIAdd)
	want := []string{
		"PATH=/usr/bin", "HOME=/root",
		"CNI_COMMAND=ADD", "CNI_CONTAINERID=abc123", "CNI_NETNS=/run/netns/x-pod-demo-echo",
		"CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=echo;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0b5e4c9e-1111-4222-8333-444455556666",
	}
	if !slices.Equal(env, want) {
		t.Fatalf("cniEnv =\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
}
