package kube

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/ambitmesh/ambit/e2e/cluster"
)

// DialContext connects to addr (an IP literal and port) from the cluster's network
// namespace, or from the caller's when the cluster has none. RESTConfig uses it.
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.Netns == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return cluster.Dial(ctx, c.Netns, network, addr)
}

// httpClient is a client that dials with DialContext and trusts tlsCfg (nil for plain
// HTTP only).
func (c *Cluster) httpClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		DialContext:     c.DialContext,
		TLSClientConfig: tlsCfg,
	}}
}

// url is scheme://host:port for the cluster's listen address.
func (c *Cluster) url(scheme string, port int) string {
	return scheme + "://" + net.JoinHostPort(c.host, strconv.Itoa(port))
}

// Kubectl returns a command running kubectl from binDir with the admin kubeconfig and
// args, inside the cluster's namespace when it has one.
func (c *Cluster) Kubectl(ctx context.Context, binDir string, args ...string) *exec.Cmd {
	argv := append([]string{filepath.Join(binDir, "kubectl"), "--kubeconfig", c.Kubeconfig}, args...)
	if c.Netns != "" {
		argv = append([]string{"nsenter", "--net=" + c.Netns, "--"}, argv...)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}
