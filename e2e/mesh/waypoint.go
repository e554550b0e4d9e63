package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// WaypointSpec names a waypoint the mesh may run: its Gateway Name in Namespace. As
// Istio's waypoint controller does, the waypoint runs as a service account named like
// its Gateway.
type WaypointSpec struct{ Namespace, Name string }

// ErrUndeclaredWaypoint is returned by AddWaypoint for a waypoint missing from
// Options.Waypoints: istiod-lite, which reads its tokens once, would not admit it.
var ErrUndeclaredWaypoint = errors.New("waypoint not declared in mesh Options.Waypoints")

// Waypoint is a running waypoint (F-WP-1 as the harness plays it: no kubelet, so the
// harness writes what the waypoint controller and kubelet would have made and runs the
// process itself).
type Waypoint struct {
	Namespace, Name string
	// VIP is the cluster IP of the waypoint's Service (same name as the Gateway), where
	// ztunnels send the traffic it serves (HBONE, port 15008).
	VIP netip.Addr
	// Pod is the waypoint's pod: not enrolled (istio.io/dataplane-mode=none); the
	// waypoint terminates HBONE on its own 15008.
	Pod *cluster.Pod
	// Process is the waypoint binary running in Pod.
	Process *cluster.Process
}

// waypointDir holds the waypoint's token file.
func (m *Mesh) waypointDir(namespace, name string) string {
	return m.path("waypoints", namespace+"_"+name)
}

// waypointTokens writes a fresh token file for every declared waypoint and returns the
// tokens-file lines binding each token to namespace/name (no node binding: a waypoint
// is no ztunnel).
func (m *Mesh) waypointTokens() ([]string, error) {
	var lines []string
	for _, w := range m.opts.Waypoints {
		if w.Namespace == "" || w.Name == "" {
			return nil, fmt.Errorf("waypoint token: empty namespace or name in %+v", w)
		}
		dir := m.waypointDir(w.Namespace, w.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("waypoint token: %w", err)
		}
		tok := randomToken()
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("waypoint token: %w", err)
		}
		lines = append(lines, fmt.Sprintf("%s %s/%s", tok, w.Namespace, w.Name))
	}
	return lines, nil
}

// AddWaypoint deploys waypoint name in namespace on node, as istiod-lite's waypoint
// controller and kubelet would: it writes the service account, the Gateway (class
// istio-waypoint), its Service (ports 15021 and 15008, a cluster IP from
// Config.AllocateServiceIP, selecting the pod) and the pod (labels
// gateway.networking.k8s.io/gateway-name=<name>, istio.io/dataplane-mode=none; no CNI
// ADD, so never enrolled), then runs bin/waypoint in the pod with the Deployment's
// flags and environment, and waits until its /healthz/ready (:15021) answers 200. The
// waypoint must be in Options.Waypoints (ErrUndeclaredWaypoint otherwise). The process
// stops when ctx ends or the mesh closes; it logs to LogPath("waypoint-<ns>-<name>").
func (m *Mesh) AddWaypoint(ctx context.Context, node, namespace, name string) (*Waypoint, error) {
	if !slices.Contains(m.opts.Waypoints, WaypointSpec{namespace, name}) {
		return nil, fmt.Errorf("add waypoint %s/%s: %w", namespace, name, ErrUndeclaredWaypoint)
	}
	n := m.Nodes[node]
	if n == nil {
		return nil, fmt.Errorf("add waypoint %s/%s: unknown node %q", namespace, name, node)
	}
	w := &Waypoint{Namespace: namespace, Name: name}
	if err := m.writeWaypoint(n, w); err != nil {
		return nil, fmt.Errorf("add waypoint %s/%s: %w", namespace, name, err)
	}
	var err error
	if w.Process, err = w.Pod.Start(ctx, m.LogPath("waypoint-"+namespace+"-"+name), m.waypointArgv(w)...); err != nil {
		return nil, fmt.Errorf("add waypoint %s/%s: %w", namespace, name, err)
	}
	if err := m.waitWaypointReady(ctx, w); err != nil {
		return nil, fmt.Errorf("add waypoint %s/%s: %w", namespace, name, err)
	}
	return w, nil
}

// writeWaypoint records the waypoint's objects in the config and creates its pod.
func (m *Mesh) writeWaypoint(n *Node, w *Waypoint) error {
	c := m.Config
	selector := map[string]string{wire.LabelGatewayName: w.Name}
	vip, err := c.AllocateServiceIP()
	if err != nil {
		return err
	}
	w.VIP = vip
	for _, err := range []error{
		c.ServiceAccount(w.Namespace, w.Name),
		c.Gateway(w.Namespace, w.Name, nil),
		c.LabelledService(w.Namespace, w.Name, vip.String(), selector, selector,
			ServicePort{Name: "status-port", Port: wire.PortReadiness, TargetPort: wire.PortReadiness},
			ServicePort{Name: "mesh", Port: wire.PortHBONE, TargetPort: wire.PortHBONE}),
	} {
		if err != nil {
			return err
		}
	}
	if w.Pod, err = n.AddPod(w.Namespace, w.Name); err != nil {
		return err
	}
	labels := map[string]string{
		wire.LabelGatewayName:                          w.Name,
		wire.LabelDataplaneMode:                        wire.DataplaneModeNone,
		"gateway.networking.k8s.io/gateway-class-name": wire.WaypointGatewayClass,
	}
	ports := []corev1.ContainerPort{
		{Name: "mesh", ContainerPort: wire.PortHBONE},
		{Name: "metrics", ContainerPort: wire.PortMetrics},
		{Name: "status-port", ContainerPort: wire.PortReadiness},
	}
	return c.Pod(w.Pod, w.Name, labels, ports)
}

// waypointArgv is `env <downward API values> waypoint <flags>`: env execs the waypoint,
// so the process's pid is the waypoint's.
func (m *Mesh) waypointArgv(w *Waypoint) []string {
	return []string{
		"env",
		"POD_NAME=" + w.Pod.Name, "POD_NAMESPACE=" + w.Namespace, "INSTANCE_IP=" + w.Pod.IP.String(),
		"SERVICE_ACCOUNT=" + w.Name, "GATEWAY_NAME=" + w.Name,
		m.Bin("waypoint"),
		"--xds-address", fmt.Sprintf("%s:%d", m.Cluster.BridgeIP, wire.PortXDSTLS),
		"--root-cert", m.path("ca", "root-cert.pem"),
		"--token-file", filepath.Join(m.waypointDir(w.Namespace, w.Name), "token"),
		"--log-level", "warn",
	}
}

// waitWaypointReady polls the waypoint's readiness endpoint inside its pod.
func (m *Mesh) waitWaypointReady(ctx context.Context, w *Waypoint) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", wire.PortReadiness)
	return Poll(ctx, time.Minute, func() error {
		select {
		case <-w.Process.Done():
			return fmt.Errorf("waypoint exited: %v (log %s)", w.Process.Err(), w.Process.LogPath)
		default:
		}
		if _, err := cluster.HTTPGet(w.Pod.NetnsPath, url); err != nil {
			return fmt.Errorf("waypoint not ready: %w", err)
		}
		return nil
	})
}

// WaitServing waits until traffic to Service service of the waypoint's namespace on
// port can take the waypoint: the ztunnel of every node names the waypoint's VIP as
// the Service's waypoint (WDS), and the waypoint holds at least one endpoint for the
// service's port (EDS cluster "outbound|<port>||<service>.<ns>.svc.cluster.local").
func (m *Mesh) WaitServing(ctx context.Context, w *Waypoint, service string, port int) error {
	cds := fmt.Sprintf("outbound|%d||%s.%s.svc.cluster.local", port, service, w.Namespace)
	err := Poll(ctx, time.Minute, func() error {
		for name := range m.Nodes {
			if err := m.serviceWaypoint(name, w.Namespace, service, w.VIP); err != nil {
				return err
			}
		}
		return w.hasEndpoints(cds)
	})
	if err != nil {
		return fmt.Errorf("wait waypoint %s/%s serving %s:%d: %w", w.Namespace, w.Name, service, port, err)
	}
	return nil
}

// serviceWaypoint checks that node's ztunnel knows service with waypoint vip.
func (m *Mesh) serviceWaypoint(node, namespace, service string, vip netip.Addr) error {
	d, err := m.ConfigDump(node)
	if err != nil {
		return err
	}
	for _, raw := range d.Services {
		var s struct {
			Name, Namespace string
			Waypoint        *struct {
				Address *struct{ Address []byte } `json:"address"`
			} `json:"waypoint"`
		}
		if json.Unmarshal(raw, &s) != nil || s.Name != service || s.Namespace != namespace {
			continue
		}
		if s.Waypoint == nil || s.Waypoint.Address == nil {
			return fmt.Errorf("ztunnel %s: service %s/%s has no waypoint yet", node, namespace, service)
		}
		if got, _ := netip.AddrFromSlice(s.Waypoint.Address.Address); got.Unmap() != vip {
			return fmt.Errorf("ztunnel %s: service %s/%s has waypoint %s, want %s", node, namespace, service, got, vip)
		}
		return nil
	}
	return fmt.Errorf("ztunnel %s does not know service %s/%s yet", node, namespace, service)
}

// hasEndpoints checks the waypoint's /config_dump for at least one endpoint of cluster.
func (w *Waypoint) hasEndpoints(cluster string) error {
	var d struct {
		Endpoints map[string]struct {
			Endpoints []struct {
				LbEndpoints []json.RawMessage `json:"lbEndpoints"`
			} `json:"endpoints"`
		} `json:"endpoints"`
	}
	body, err := w.ConfigDump()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("waypoint config dump: %w", err)
	}
	for _, loc := range d.Endpoints[cluster].Endpoints {
		if len(loc.LbEndpoints) > 0 {
			return nil
		}
	}
	return fmt.Errorf("waypoint %s/%s has no endpoint for %s yet", w.Namespace, w.Name, cluster)
}

// ConfigDump reads the waypoint's /config_dump (admin port on 127.0.0.1 in its pod):
// JSON of the applied listeners, routes, clusters and endpoints by name.
func (w *Waypoint) ConfigDump() ([]byte, error) {
	body, err := cluster.HTTPGet(w.Pod.NetnsPath, fmt.Sprintf("http://127.0.0.1:%d/config_dump", wire.PortAdmin))
	if err != nil {
		return nil, fmt.Errorf("waypoint config dump: %w", err)
	}
	return body, nil
}

// Metrics reads the waypoint's Prometheus text (:15020/metrics in its pod).
func (w *Waypoint) Metrics() (string, error) {
	body, err := cluster.HTTPGet(w.Pod.NetnsPath, fmt.Sprintf("http://127.0.0.1:%d/metrics", wire.PortMetrics))
	if err != nil {
		return "", fmt.Errorf("waypoint metrics: %w", err)
	}
	return string(body), nil
}

// Requests sums the waypoint's istio_requests_total (reporter "waypoint") for
// destination services of namespace (all namespaces when empty).
func (w *Waypoint) Requests(namespace string) (float64, error) {
	text, err := w.Metrics()
	if err != nil {
		return 0, err
	}
	match := map[string]string{"reporter": "waypoint"}
	if namespace != "" {
		match["destination_service_namespace"] = namespace
	}
	return MetricSum(text, "istio_requests_total", match)
}
