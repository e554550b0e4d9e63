package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// ErrNoBinaries is returned by Start when Options.BinDir lacks one of the binaries
// hack/build-kube-tools.sh builds (etcd, kube-apiserver, kube-controller-manager).
var ErrNoBinaries = errors.New("kube binaries missing (run make kube-tools)")

// Options configures Start.
type Options struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager (and kubectl), as
	// built by hack/build-kube-tools.sh into .cache/kube/<version>/.
	BinDir string
	// Dir receives everything the cluster writes: pki/ (generated certificates and
	// keys), etcd/ (data), logs/<component>.log and the admin kubeconfig. It must exist
	// or be creatable; Close removes nothing from it. Usually t.TempDir().
	Dir string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Netns, when set, is the path of a network namespace (e.g. /run/netns/<fabric>) the
	// components run in, entered with nsenter; they then listen on Host at fixed ports
	// (etcd 2379/2380, API server 6443, controller manager 10257), and the Cluster's
	// clients dial from inside that namespace. Empty: the caller's namespace, on
	// 127.0.0.1 ports the kernel picks.
	Netns string
	// Host is the IPv4 address the components bind to and the API server advertises; it
	// must be local to Netns. Default 127.0.0.1. It is added to the serving
	// certificates' addresses.
	Host string
	// NoControllerManager leaves kube-controller-manager out: no EndpointSlices, no
	// namespace deletion, no garbage collection, but also no pod GC or node lifecycle
	// acting on objects without a kubelet (control-plane scale benchmarks).
	NoControllerManager bool
}

// Cluster is a running control plane started by Start. Its processes are children of
// the calling process; Close stops them.
type Cluster struct {
	// Kubeconfig is the path of the admin kubeconfig (user "kubernetes-admin" in group
	// system:masters, credentials embedded), usable by kubectl and clientcmd.
	Kubeconfig string
	// RESTConfig is the same admin identity for client-go.
	RESTConfig *rest.Config
	// Server is the API server's URL, https://127.0.0.1:<port>.
	Server string
	// EtcdURL is etcd's client URL, http://127.0.0.1:<port> (plain HTTP on loopback).
	EtcdURL string
	// CAFile is the PEM file of the cluster CA, which signs the API server's serving
	// certificate and every client certificate it accepts.
	CAFile string
	// Netns is Options.Netns: the namespace the components run in ("" for the caller's).
	Netns string

	log   *slog.Logger
	sp    *spawner
	procs []*process // in start order
	host  string
}

// Start generates a PKI in opts.Dir, starts etcd, kube-apiserver (RBAC and Node
// authorization, service-account tokens signed with a generated key, service range
// ServiceCIDR) and kube-controller-manager (all default controllers, so EndpointSlices
// and namespace deletion work; unless Options.NoControllerManager) on 127.0.0.1 ports
// the kernel picks, and returns once the API server's /readyz and the controller
// manager's /healthz answer 200. ctx bounds the
// start only. On error everything started is stopped again.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("start kube: Options.Dir is empty")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("start kube: %w: %w", ErrNoBinaries, err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if net.ParseIP(opts.Host).To4() == nil {
		return nil, fmt.Errorf("start kube: Options.Host %q is not an IPv4 address", opts.Host)
	}
	c := &Cluster{log: log, sp: newSpawner(), Netns: opts.Netns, host: opts.Host}
	if err := c.start(ctx, opts); err != nil {
		return nil, errors.Join(fmt.Errorf("start kube: %w", err), c.Close())
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	dirs := map[string]string{}
	for _, d := range []string{"pki", "logs", "etcd", "controller-manager"} {
		dirs[d] = filepath.Join(opts.Dir, d)
		if err := os.MkdirAll(dirs[d], 0o700); err != nil {
			return fmt.Errorf("create %s dir: %w", d, err)
		}
	}
	ports := []int{2379, 2380, 6443, 10257}
	if opts.Netns == "" {
		var err error
		if ports, err = freePorts(4); err != nil {
			return err
		}
	}
	etcdClient, etcdPeer, apiPort, kcmPort := ports[0], ports[1], ports[2], ports[3]
	c.EtcdURL, c.Server = c.url("http", etcdClient), c.url("https", apiPort)

	certs, err := generateCerts(dirs["pki"], net.ParseIP(opts.Host))
	if err != nil {
		return err
	}
	c.CAFile = certs.pki.caFile()

	begin := time.Now()
	if err := c.startEtcd(ctx, opts.BinDir, dirs, etcdClient, etcdPeer); err != nil {
		return err
	}
	c.log.Info("etcd ready", "url", c.EtcdURL, "after", time.Since(begin))
	if err := c.startAPIServer(ctx, opts.BinDir, dirs, certs, apiPort); err != nil {
		return err
	}
	c.log.Info("kube-apiserver ready", "url", c.Server, "after", time.Since(begin))

	c.Kubeconfig = filepath.Join(opts.Dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, certs.pki.caPEM, certs.admin); err != nil {
		return err
	}
	c.RESTConfig = c.restConfig(certs.pki.caPEM, certs.admin)
	if opts.NoControllerManager {
		return nil
	}
	if err := c.startControllerManager(ctx, opts.BinDir, dirs, certs, kcmPort); err != nil {
		return err
	}
	c.log.Info("kube-controller-manager ready", "after", time.Since(begin))
	return nil
}

func (c *Cluster) startEtcd(ctx context.Context, bin string, dirs map[string]string, client, peer int) error {
	peerURL := c.url("http", peer)
	args := []string{
		"--name=default",
		"--data-dir=" + dirs["etcd"],
		"--listen-client-urls=" + c.EtcdURL,
		"--advertise-client-urls=" + c.EtcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--initial-cluster-state=new",
		// A test cluster's data is disposable; skipping fsync keeps it fast on shared disks.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
	p, err := c.run(dirs["logs"], "etcd", filepath.Join(bin, "etcd"), args)
	if err != nil {
		return err
	}
	hc := c.httpClient(nil)
	defer hc.CloseIdleConnections()
	return waitHTTP(ctx, hc, c.EtcdURL+"/health", p)
}

func (c *Cluster) startAPIServer(ctx context.Context, bin string, dirs map[string]string, certs *clusterCerts, port int) error {
	args := []string{
		"--advertise-address=" + c.host,
		"--bind-address=" + c.host,
		"--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=" + c.EtcdURL,
		"--tls-cert-file=" + certs.apiserver.certFile,
		"--tls-private-key-file=" + certs.apiserver.keyFile,
		"--client-ca-file=" + certs.pki.caFile(),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + certs.saPub,
		"--service-account-signing-key-file=" + certs.saKey,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--allow-privileged=true",
		// The default lease reconciler would publish 127.0.0.1 as the endpoint of the
		// "kubernetes" Service, which Endpoints validation rejects (loopback), and retry
		// forever; clients here use the kubeconfig, not that Service.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + dirs["pki"],
		"--profiling=false",
	}
	p, err := c.run(dirs["logs"], "kube-apiserver", filepath.Join(bin, "kube-apiserver"), args)
	if err != nil {
		return err
	}
	client, err := rest.HTTPClientFor(c.restConfig(certs.pki.caPEM, certs.admin))
	if err != nil {
		return fmt.Errorf("admin http client: %w", err)
	}
	return waitHTTP(ctx, client, c.Server+"/readyz", p)
}

func (c *Cluster) startControllerManager(ctx context.Context, bin string, dirs map[string]string, certs *clusterCerts, port int) error {
	kubeconfig := filepath.Join(dirs["pki"], "controller-manager.kubeconfig")
	if err := writeKubeconfig(kubeconfig, c.Server, certs.pki.caPEM, certs.controllerManager); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=" + c.host,
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + certs.controllerManagerServing.certFile,
		"--tls-private-key-file=" + certs.controllerManagerServing.keyFile,
		"--cert-dir=" + dirs["controller-manager"],
		"--controllers=*",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + certs.saKey,
		"--root-ca-file=" + certs.pki.caFile(),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--leader-elect=false",
		"--profiling=false",
	}
	p, err := c.run(dirs["logs"], "kube-controller-manager", filepath.Join(bin, "kube-controller-manager"), args)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(certs.pki.ca)
	client := c.httpClient(&tls.Config{RootCAs: roots})
	defer client.CloseIdleConnections()
	return waitHTTP(ctx, client, c.url("https", port)+"/healthz", p)
}

// run starts one component and records it for Close.
func (c *Cluster) run(logDir, name, bin string, args []string) (*process, error) {
	if c.Netns != "" {
		args = append([]string{"--net=" + c.Netns, "--", bin}, args...)
		bin = "nsenter"
	}
	p, err := startProcess(c.sp, logDir, name, bin, args)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.log.Info("started", "component", name, "pid", p.cmd.Process.Pid, "log", p.logFile)
	return p, nil
}

// Close stops the components in reverse start order (SIGTERM, then SIGKILL after 10s)
// and waits until each is reaped. It removes no files. It is safe to call again; the
// error joins any failure to signal a process.
func (c *Cluster) Close() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		errs = append(errs, c.procs[i].stop())
	}
	c.procs = nil
	if c.sp != nil {
		c.sp.close()
		c.sp = nil
	}
	return errors.Join(errs...)
}

// freePorts returns n distinct ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}
