package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// PodSpec describes a pod to create.
type PodSpec struct {
	Node, Namespace, Name, ServiceAccount string
	Labels                                map[string]string
	Ports                                 []corev1.ContainerPort
}

// AddPod plays kubelet: it creates the pod's namespace and cgroup, records the Pod (with
// its IP) in the config, and runs the CNI plugin's ADD as a container runtime would.
func (m *Mesh) AddPod(ctx context.Context, s PodSpec) (*cluster.Pod, error) {
	n := m.Nodes[s.Node]
	if n == nil {
		return nil, fmt.Errorf("add pod %s/%s: unknown node %q", s.Namespace, s.Name, s.Node)
	}
	p, err := n.AddPod(s.Namespace, s.Name)
	if err != nil {
		return nil, fmt.Errorf("add pod %s/%s: %w", s.Namespace, s.Name, err)
	}
	if err := m.Config.Pod(p, s.ServiceAccount, s.Labels, s.Ports); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambit-cni","agentSocket":%q}`, n.cniSock)
	if out, err := m.Cluster.RunCNI(ctx, m.Bin("ambit-cni"), p, []byte(conf), "ADD"); err != nil {
		return nil, fmt.Errorf("add pod %s/%s: cni add: %w: %s", s.Namespace, s.Name, err, out)
	}
	return p, nil
}

// ConfigDump is the part of a ztunnel's /config_dump the harness reads.
type ConfigDump struct {
	InpodWorkloads []struct {
		UID, Name, Namespace, IP, Identity string
	} `json:"inpodWorkloads"`
	Certificates []struct {
		Identity string `json:"identity"`
	} `json:"certificates"`
	Workloads []json.RawMessage `json:"workloads"`
	Services  []json.RawMessage `json:"services"`
	Policies  []json.RawMessage `json:"policies"`
}

// ConfigDump reads the node's ztunnel /config_dump.
func (m *Mesh) ConfigDump(node string) (*ConfigDump, error) {
	return ReadConfigDump(m.Nodes[node].NetnsPath)
}

// ReadConfigDump reads /config_dump of the ztunnel serving the node namespace at netns
// (its admin port on 127.0.0.1).
func ReadConfigDump(netns string) (*ConfigDump, error) {
	body, err := cluster.HTTPGet(netns, fmt.Sprintf("http://127.0.0.1:%d/config_dump", wire.PortAdmin))
	if err != nil {
		return nil, fmt.Errorf("config dump: %w", err)
	}
	d := &ConfigDump{}
	if err := json.Unmarshal(body, d); err != nil {
		return nil, fmt.Errorf("config dump: %w", err)
	}
	return d, nil
}

// Metrics reads the node's ztunnel Prometheus metrics text.
func (m *Mesh) Metrics(node string) (string, error) {
	return ReadMetrics(m.Nodes[node].NetnsPath)
}

// ReadMetrics reads the Prometheus text of the ztunnel serving the node namespace at
// netns.
func ReadMetrics(netns string) (string, error) {
	body, err := cluster.HTTPGet(netns, fmt.Sprintf("http://127.0.0.1:%d/metrics", wire.PortMetrics))
	return string(body), err
}

// WaitEnrolled waits until the pod's node ztunnel serves it in-pod, and until every WDS
// workload count reaches want (so routing knows the whole app).
func (m *Mesh) WaitEnrolled(ctx context.Context, p *cluster.Pod) error {
	return Poll(ctx, 30*time.Second, func() error {
		d, err := m.ConfigDump(p.Node.Name)
		if err != nil {
			return err
		}
		for _, w := range d.InpodWorkloads {
			if w.UID == p.UID {
				return nil
			}
		}
		return fmt.Errorf("pod %s/%s not yet served by ztunnel on %s", p.Namespace, p.Name, p.Node.Name)
	})
}

// WaitWorkloads waits until every node's ztunnel knows at least n workloads over WDS.
func (m *Mesh) WaitWorkloads(ctx context.Context, n int) error {
	return Poll(ctx, 30*time.Second, func() error {
		for name := range m.Nodes {
			d, err := m.ConfigDump(name)
			if err != nil {
				return err
			}
			if len(d.Workloads) < n {
				return fmt.Errorf("ztunnel %s knows %d workloads, want %d", name, len(d.Workloads), n)
			}
		}
		return nil
	})
}
