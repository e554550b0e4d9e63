package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/pkg/kubeclient"
)

// UserAgent identifies the node agent to the API server.
const UserAgent = "ambit-cni-agent"

// NewClient returns a clientset for the kubeconfig file at path; when path is empty,
// for the files KUBECONFIG names, else for the in-cluster service account (see
// pkg/kubeclient). Errors name the source that failed.
func NewClient(path string) (kubernetes.Interface, error) {
	cfg, err := kubeclient.RESTConfig(path, UserAgent)
	if err != nil {
		return nil, fmt.Errorf("kube client config %q: %w", path, err)
	}
	c, err := kubernetes.NewForConfig(kubeclient.Protobuf(cfg))
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	return c, nil
}
