package kube

import (
	"fmt"
	"net"
)

// clusterCerts is every credential the control plane uses, all under one CA.
type clusterCerts struct {
	pki                      *pki
	apiserver                *leaf // serving: 127.0.0.1, localhost, kubernetes.default.svc...
	admin                    *leaf // client: kubernetes-admin, group system:masters
	controllerManager        *leaf // client: system:kube-controller-manager (bootstrap RBAC role)
	controllerManagerServing *leaf // serving: 127.0.0.1, localhost
	saKey, saPub             string
}

// generateCerts writes the CA, the leaf certificates and the service-account key pair
// to dir.
func generateCerts(dir string, host net.IP) (*clusterCerts, error) {
	p, err := newPKI(dir)
	if err != nil {
		return nil, fmt.Errorf("generate pki: %w", err)
	}
	cc := &clusterCerts{pki: p}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host != nil && !host.IsLoopback() {
		loopback = append(loopback, host)
	}
	specs := []struct {
		dst  **leaf
		spec certSpec
	}{
		{&cc.apiserver, certSpec{
			name: "apiserver", cn: "kube-apiserver", server: true,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"},
			ips: append(loopback, net.ParseIP(KubernetesServiceIP)),
		}},
		{&cc.admin, certSpec{name: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}}},
		{&cc.controllerManager, certSpec{name: "controller-manager", cn: "system:kube-controller-manager"}},
		{&cc.controllerManagerServing, certSpec{
			name: "controller-manager-serving", cn: "kube-controller-manager", server: true,
			dns: []string{"localhost"}, ips: loopback,
		}},
	}
	for _, s := range specs {
		l, err := p.issue(s.spec)
		if err != nil {
			return nil, fmt.Errorf("generate pki: %w", err)
		}
		*s.dst = l
	}
	cc.saKey, cc.saPub, err = p.serviceAccountKeys()
	if err != nil {
		return nil, fmt.Errorf("generate pki: %w", err)
	}
	return cc, nil
}
