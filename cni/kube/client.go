package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent identifies the node agent to the API server.
const UserAgent = "ambit-cni-agent"

// NewClient returns a clientset for the kubeconfig file at path; when path is empty,
// for the files the KUBECONFIG environment variable names, else for the in-cluster
// service account (KUBERNETES_SERVICE_HOST, mounted token), as kubectl and client-go's
// default loading rules resolve them. Errors name the source that failed.
func NewClient(path string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube client config %q: %w", path, err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = UserAgent
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	return c, nil
}
