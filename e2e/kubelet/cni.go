package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// loopbackConf is the network containerd sets up first in every sandbox.
var loopbackConf = []byte(`{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}`)

// nodeExec runs CNI plugins in the node's network namespace, where a container runtime
// runs them (the host side of the veth lives there). It implements libcni's invoke.Exec.
type nodeExec struct{ netns string }

// ExecPlugin runs the plugin with stdin and environ; a failing plugin's error object
// on stdout becomes the error, as invoke.RawExec does.
func (e nodeExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+e.netns, "--", pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var perr types.Error
		if json.Unmarshal(stdout.Bytes(), &perr) == nil && perr.Msg != "" {
			return nil, &perr
		}
		return nil, fmt.Errorf("run %s: %w: %s%s", filepath.Base(pluginPath), err,
			strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// FindInPath finds a plugin binary as libcni's default exec does.
func (nodeExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// Decode reads a plugin's VERSION answer.
func (nodeExec) Decode(b []byte) (version.PluginInfo, error) {
	var d version.PluginDecoder
	return d.Decode(b)
}

// network is the CNI configuration a sandbox was set up with, kept for its DEL.
type network struct {
	list    *libcni.NetworkConfigList
	runtime *libcni.RuntimeConf
}

// cni returns the node's libcni runner.
func (k *Kubelet) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{filepath.Join(k.cfg.Root, CNIBinDir)},
		filepath.Join(k.cfg.Root, "/var/lib/cni/cache"), nodeExec{k.cfg.Node.NetnsPath})
}

// primaryNetwork loads the first network configuration file of the node's conf dir in
// lexical order, as containerd does.
func (k *Kubelet) primaryNetwork() (*libcni.NetworkConfigList, error) {
	dir := filepath.Join(k.cfg.Root, CNIConfDir)
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("read cni conf dir: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no cni network configuration in %s", dir)
	}
	if strings.HasSuffix(files[0], ".conflist") {
		return libcni.NetworkConfFromFile(files[0])
	}
	conf, err := libcni.ConfFromFile(files[0])
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

// setUpNetwork runs ADD of the loopback and primary networks for the sandbox and
// returns the pod IP from the primary network's result.
func (k *Kubelet) setUpNetwork(ctx context.Context, sb *cluster.Pod) (*network, netip.Addr, error) {
	rt := &libcni.RuntimeConf{
		ContainerID: sb.ContainerID, NetNS: sb.NetnsPath, IfName: "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", sb.Namespace}, {"K8S_POD_NAME", sb.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", sb.ContainerID}, {"K8S_POD_UID", sb.UID},
		},
	}
	cni := k.cni()
	lo, err := libcni.NetworkConfFromBytes(loopbackConf)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("loopback conf: %w", err)
	}
	loRT := *rt
	loRT.IfName = "lo"
	if _, err := cni.AddNetworkList(ctx, lo, &loRT); err != nil {
		return nil, netip.Addr{}, fmt.Errorf("cni add loopback: %w", err)
	}
	list, err := k.primaryNetwork()
	if err != nil {
		return nil, netip.Addr{}, err
	}
	res, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return &network{list, rt}, netip.Addr{}, fmt.Errorf("cni add %s: %w", list.Name, err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return &network{list, rt}, netip.Addr{}, fmt.Errorf("cni result: %w", err)
	}
	for _, ip := range cur.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok && a.Unmap().Is4() {
			return &network{list, rt}, a.Unmap(), nil
		}
	}
	return &network{list, rt}, netip.Addr{}, fmt.Errorf("cni add %s: no IPv4 address in result", list.Name)
}

// tearDown runs DEL of the network the sandbox was set up with.
func (k *Kubelet) tearDown(ctx context.Context, n *network) error {
	if n == nil {
		return nil
	}
	if err := k.cni().DelNetworkList(ctx, n.list, n.runtime); err != nil {
		return fmt.Errorf("cni del %s: %w", n.list.Name, err)
	}
	return nil
}
