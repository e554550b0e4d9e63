package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// CNI commands, as the CNI spec names them.
const (
	CNIAdd     = "ADD"
	CNIDel     = "DEL"
	CNICheck   = "CHECK"
	CNIVersion = "VERSION"
)

// RunCNI plays the container runtime for one chained CNI plugin call: it
// runs pluginPath in the pod's node namespace (the runtime's host) with the
// CNI environment (CNI_COMMAND=command, CNI_CONTAINERID=pod.ContainerID,
// CNI_NETNS=pod.NetnsPath, CNI_IFNAME=eth0, CNI_PATH=the plugin's directory,
// CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;
// K8S_POD_UID=..", as kubelet and containerd pass them) and conf on stdin,
// extended with a cniVersion 1.0.0 prevResult describing the pod's eth0 and
// IP as the bridge plugin would have returned it (for every command except
// VERSION). conf must be a JSON object; a missing cniVersion becomes 1.0.0.
// It returns the plugin's stdout; a non-zero exit is an error carrying
// stdout (where CNI plugins write their error object) and stderr.
func (c *Cluster) RunCNI(ctx context.Context, pluginPath string, pod *Pod, conf []byte, command string) ([]byte, error) {
	stdin, err := cniStdin(conf, pod, command)
	if err != nil {
		return nil, fmt.Errorf("run cni %s: %w", command, err)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	cmd := exec.CommandContext(ctx, c.nsenter, "--net="+pod.Node.NetnsPath, "--", pluginPath)
	cmd.Env = cniEnv(os.Environ(), pluginPath, pod, command)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("run cni %s %s for %s/%s: %w: stdout %s stderr %s",
			filepath.Base(pluginPath), command, pod.Namespace, pod.Name, err,
			strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// cniEnv returns base without CNI_* variables plus the CNI call's variables.
func cniEnv(base []string, pluginPath string, pod *Pod, command string) []string {
	env := make([]string, 0, len(base)+6)
	for _, kv := range base {
		if !strings.HasPrefix(kv, "CNI_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"CNI_COMMAND="+command,
		"CNI_CONTAINERID="+pod.ContainerID,
		"CNI_NETNS="+pod.NetnsPath,
		"CNI_IFNAME=eth0",
		"CNI_PATH="+filepath.Dir(pluginPath),
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE="+pod.Namespace+";K8S_POD_NAME="+pod.Name+
			";K8S_POD_INFRA_CONTAINER_ID="+pod.ContainerID+";K8S_POD_UID="+pod.UID,
	)
}

// cniStdin merges a prevResult for pod into the network configuration conf.
func cniStdin(conf []byte, pod *Pod, command string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		return nil, fmt.Errorf("parse conf: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("parse conf: not a JSON object")
	}
	if _, ok := m["cniVersion"]; !ok {
		m["cniVersion"] = "1.0.0"
	}
	if command != CNIVersion {
		prev, err := json.Marshal(PrevResult(pod))
		if err != nil {
			return nil, fmt.Errorf("encode prevResult: %w", err)
		}
		m["prevResult"] = json.RawMessage(prev)
	}
	return json.Marshal(m)
}

// PrevResult is the CNI 1.0.0 result a bridge plugin would return for pod:
// interfaces [host veth, eth0 in the pod netns], the pod IP on eth0 with the
// node gateway, and a default route.
func PrevResult(pod *Pod) *current.Result {
	eth0 := 1
	gw := net.IP(pod.Node.Gateway.AsSlice())
	return &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{
			{Name: pod.HostIfName, Mac: pod.HostMAC},
			{Name: "eth0", Mac: pod.MAC, Sandbox: pod.NetnsPath},
		},
		IPs: []*current.IPConfig{{
			Interface: &eth0,
			Address:   net.IPNet{IP: net.IP(pod.IP.AsSlice()), Mask: net.CIDRMask(pod.Node.PodCIDR.Bits(), 32)},
			Gateway:   gw,
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw}},
	}
}
