package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// Config configures one node's kubelet.
type Config struct {
	// Client is an admin client of the API server.
	Client kubernetes.Interface
	// Node is the network-namespace node the kubelet runs pods on.
	Node *cluster.Node
	// Root is the node's root directory: hostPath volumes live under it (a pod's
	// hostPath /etc/cni/net.d is <Root>/etc/cni/net.d) and so does the kubelet's own
	// state (<Root>/var/lib/kubelet).
	Root string
	// HostPaths maps hostPath volume paths that must not live under Root to the real
	// directories that stand for them, e.g. "/sys/fs/bpf" → a private bpffs, and
	// "/sys/fs/cgroup" → the run's cgroup root.
	HostPaths map[string]string
	// BinDir holds the container binaries, named after the images' last path element.
	BinDir string
	// APIServer and CAData tell containers how to reach the API server (their
	// kubeconfig), e.g. https://10.10.0.1:6443 and the cluster CA in PEM.
	APIServer string
	CAData    []byte
	// LogDir receives <namespace>_<pod>_<container>.log per container.
	LogDir string
	// Logger receives the kubelet's own messages; nil discards them.
	Logger *slog.Logger
}

// CNIConfDir and CNIBinDir are the node's CNI directories below Config.Root, where the
// runtime reads the network configuration and plugins (containerd's defaults).
const (
	CNIConfDir = "/etc/cni/net.d"
	CNIBinDir  = "/opt/cni/bin"
)

// Kubelet runs the pods bound to one node. Build it with New and start it with Run.
type Kubelet struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	pods map[string]*podRuntime // by pod UID
}

// New checks cfg and builds a kubelet; it starts nothing.
func New(cfg Config) (*Kubelet, error) {
	if cfg.Client == nil || cfg.Node == nil || cfg.Root == "" || cfg.BinDir == "" || cfg.LogDir == "" || cfg.APIServer == "" {
		return nil, errors.New("new kubelet: Client, Node, Root, BinDir, LogDir and APIServer are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{CNIConfDir, CNIBinDir, "/var/lib/kubelet/pods", "/var/lib/cni"} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o755); err != nil {
			return nil, fmt.Errorf("new kubelet: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("new kubelet: %w", err)
	}
	return &Kubelet{cfg: cfg, log: log.With("node", cfg.Node.Name), pods: map[string]*podRuntime{}}, nil
}

// Run registers the Node, keeps its status fresh, and runs the pods bound to it until
// ctx ends; then it stops their containers (leaving sandboxes to the cluster's Close).
func (k *Kubelet) Run(ctx context.Context) error {
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.Node.Name).String()
		}))
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("kubelet %s: %w", k.cfg.Node.Name, err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	lister := factory.Core().V1().Pods().Lister()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { k.heartbeat(ctx) })
	for range 2 {
		wg.Go(func() {
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				err := k.sync(ctx, lister, key)
				if err != nil && ctx.Err() == nil {
					k.log.Warn("sync pod", "pod", key, "err", err)
					queue.AddRateLimited(key)
				} else {
					queue.Forget(key)
				}
				queue.Done(key)
			}
		})
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	k.stopAll()
	return nil
}

// stopAll stops every container still running, in parallel.
func (k *Kubelet) stopAll() {
	k.mu.Lock()
	pods := make([]*podRuntime, 0, len(k.pods))
	for _, p := range k.pods {
		pods = append(pods, p)
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(p.stopContainers)
	}
	wg.Wait()
}

// heartbeat renews the node's Ready condition every 10 s so that the node lifecycle
// controller keeps it schedulable, as the kubelet's status updates do.
func (k *Kubelet) heartbeat(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.updateNodeStatus(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("node heartbeat", "err", err)
			}
		}
	}
}

// Pod returns the sandbox of a running pod (for tests to run commands in it), or nil.
func (k *Kubelet) Pod(namespace, name string) *cluster.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.pod.Namespace == namespace && p.pod.Name == name {
			return p.sandbox
		}
	}
	return nil
}

// KillContainer SIGKILLs a running container's process, as a crash would; the kubelet
// restarts it per the pod's restart policy. It returns the killed process's pid.
func (k *Kubelet) KillContainer(namespace, pod, name string) (int, error) {
	c, err := k.container(namespace, pod, name)
	if err != nil {
		return 0, fmt.Errorf("kill container: %w", err)
	}
	return c.kill()
}

// HoldContainer kills a container and keeps it from restarting until release is
// called, as a crash loop would keep it down.
func (k *Kubelet) HoldContainer(namespace, pod, name string) (release func(), err error) {
	c, err := k.container(namespace, pod, name)
	if err != nil {
		return nil, fmt.Errorf("hold container: %w", err)
	}
	held := make(chan struct{})
	c.mu.Lock()
	c.held = held
	c.mu.Unlock()
	if _, err := c.kill(); err != nil {
		close(held)
		return nil, fmt.Errorf("hold container: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.held = nil
			c.mu.Unlock()
			close(held)
		})
	}, nil
}

// container finds a container of a pod this kubelet runs.
func (k *Kubelet) container(namespace, pod, name string) (*container, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.pod.Namespace == namespace && p.pod.Name == pod {
			for _, c := range p.containers {
				if c.name == name {
					return c, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%s/%s/%s does not run here", namespace, pod, name)
}

// kill SIGKILLs the container's process and returns its pid.
func (c *container) kill() (int, error) {
	c.mu.Lock()
	proc := c.proc
	c.mu.Unlock()
	if proc == nil {
		return 0, fmt.Errorf("%s is not running", c.name)
	}
	if err := syscall.Kill(proc.Pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill %s: %w", c.name, err)
	}
	return proc.Pid, nil
}
