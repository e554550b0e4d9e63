package mesh

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Config writes the Kubernetes objects of the mesh into the file config directory that
// istiod-lite and the node agents watch: one file per object, replaced atomically.
type Config struct {
	Dir string
	mu  sync.Mutex
	ips map[netip.Addr]bool // cluster IPs of the Services written so far
}

// Namespace writes a Namespace, labelled ambient when ambient is set.
func (c *Config) Namespace(name string, ambient bool) error {
	ns := &corev1.Namespace{TypeMeta: typeMeta("Namespace"), ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ambient {
		ns.Labels = map[string]string{wire.LabelDataplaneMode: wire.DataplaneModeAmbient}
	}
	return c.write("ns-"+name, ns)
}

// ServiceAccount writes a ServiceAccount.
func (c *Config) ServiceAccount(namespace, name string) error {
	sa := &corev1.ServiceAccount{TypeMeta: typeMeta("ServiceAccount"), ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	return c.write("sa-"+namespace+"-"+name, sa)
}

// Pod writes a running pod as kubelet would have reported it: uid, node, IP.
func (c *Config) Pod(p *cluster.Pod, serviceAccount string, labels map[string]string, ports []corev1.ContainerPort) error {
	pod := &corev1.Pod{
		TypeMeta:   typeMeta("Pod"),
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: types.UID(p.UID), Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: p.Node.Name, ServiceAccountName: serviceAccount,
			Containers: []corev1.Container{{Name: "app", Image: "ambit-echo", Ports: ports}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: p.IP.String(), PodIPs: []corev1.PodIP{{IP: p.IP.String()}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	return c.write("pod-"+p.Namespace+"-"+p.Name, pod)
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string
	Port       int32
	TargetPort int32
}

// Service writes a ClusterIP Service selecting pods by selector.
func (c *Config) Service(namespace, name, clusterIP string, selector map[string]string, ports ...ServicePort) error {
	return c.LabelledService(namespace, name, clusterIP, nil, selector, ports...)
}

// LabelledService writes a ClusterIP Service with labels (e.g. istio.io/use-waypoint)
// selecting pods by selector, and reserves its cluster IP against AllocateServiceIP.
func (c *Config) LabelledService(namespace, name, clusterIP string, labels, selector map[string]string, ports ...ServicePort) error {
	svc := &corev1.Service{
		TypeMeta:   typeMeta("Service"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Selector: selector},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: p.Name, Port: p.Port, TargetPort: intstr.FromInt32(p.TargetPort), Protocol: corev1.ProtocolTCP,
		})
	}
	if ip, err := netip.ParseAddr(clusterIP); err == nil {
		c.reserve(ip)
	}
	return c.write("svc-"+namespace+"-"+name, svc)
}

// ServiceRange is the cluster IP range of the file-mode mesh's Services (the kind
// default, as e2e/kube's ServiceCIDR).
var ServiceRange = netip.MustParsePrefix("10.96.0.0/16")

// ErrNoServiceIP is returned by AllocateServiceIP when every address of ServiceRange
// is taken.
var ErrNoServiceIP = fmt.Errorf("allocate service ip: %s exhausted", ServiceRange)

// AllocateServiceIP reserves and returns a cluster IP of ServiceRange that no Service
// written through c uses. It hands them out from the top of the range down, so they
// stay clear of the low addresses that callers pick by hand (10.96.0.1 is the
// kubernetes Service's, 10.96.0.10 the demo's).
func (c *Config) AllocateServiceIP() (netip.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := ServiceRange.Masked().Addr().Next() // skip the network address
	for ip := lastAddr(ServiceRange).Prev(); ip.IsValid() && ip != first; ip = ip.Prev() {
		if !c.ips[ip] {
			c.reserveLocked(ip)
			return ip, nil
		}
	}
	return netip.Addr{}, ErrNoServiceIP
}

func (c *Config) reserve(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserveLocked(ip)
}

func (c *Config) reserveLocked(ip netip.Addr) {
	if c.ips == nil {
		c.ips = map[netip.Addr]bool{}
	}
	c.ips[ip] = true
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Gateway writes a Gateway API Gateway of class istio-waypoint (a waypoint) with one
// HBONE listener on 15008, as `istioctl waypoint generate` makes it.
func (c *Config) Gateway(namespace, name string, labels map[string]string) error {
	gw := &gatewayv1.Gateway{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "Gateway"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: wire.WaypointGatewayClass,
			Listeners:        []gatewayv1.Listener{{Name: "mesh", Port: wire.PortHBONE, Protocol: "HBONE"}},
		},
	}
	return c.write("gw-"+namespace+"-"+name, gw)
}

func typeMeta(kind string) metav1.TypeMeta { return metav1.TypeMeta{APIVersion: "v1", Kind: kind} }

// write replaces <Dir>/<name>.yaml atomically (temp dot-file, then rename), so watchers
// never read half a file.
func (c *Config) write(name string, obj any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := yaml.Marshal(obj)
	if err != nil {
		return fmt.Errorf("write config %s: %w", name, err)
	}
	tmp := filepath.Join(c.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write config %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(c.Dir, name+".yaml")); err != nil {
		return fmt.Errorf("write config %s: %w", name, err)
	}
	return nil
}
