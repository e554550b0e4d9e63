package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// contextName is the cluster, user and context name in every kubeconfig written here.
const contextName = "ambit-e2e"

// writeKubeconfig writes a kubeconfig at path for server (https URL) that trusts caPEM
// and authenticates with the client certificate c, with data embedded so the file stands
// alone.
func writeKubeconfig(path, server string, caPEM []byte, c *leaf) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[contextName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[contextName] = &clientcmdapi.AuthInfo{ClientCertificateData: c.certPEM, ClientKeyData: c.keyPEM}
	cfg.Contexts[contextName] = &clientcmdapi.Context{Cluster: contextName, AuthInfo: contextName}
	cfg.CurrentContext = contextName
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// restConfig is the client-go configuration equivalent to writeKubeconfig's file for
// the cluster's server, dialling from inside the cluster's namespace when it has one.
func (cl *Cluster) restConfig(caPEM []byte, c *leaf) *rest.Config {
	return &rest.Config{
		Host: cl.Server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: caPEM, CertData: c.certPEM, KeyData: c.keyPEM,
		},
		QPS:   50,
		Burst: 100,
		Dial:  cl.DialContext,
	}
}
