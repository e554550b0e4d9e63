package mesh

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Config writes the Kubernetes objects of the mesh into the file config directory that
// istiod-lite and the node agents watch: one file per object, replaced atomically.
type Config struct {
	Dir string
	mu  sync.Mutex
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
	svc := &corev1.Service{
		TypeMeta:   typeMeta("Service"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Selector: selector},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: p.Name, Port: p.Port, TargetPort: intstr.FromInt32(p.TargetPort), Protocol: corev1.ProtocolTCP,
		})
	}
	return c.write("svc-"+namespace+"-"+name, svc)
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
