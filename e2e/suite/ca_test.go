package suite

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ambitmesh/ambit/e2e/cluster"
	"github.com/ambitmesh/ambit/e2e/testbed"
	"github.com/ambitmesh/ambit/pkg/caclient"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// podToken requests a service-account token with audience istio-ca bound to the pod,
// as the kubelet projects it.
func podToken(ctx context.Context, t *testing.T, p *corev1.Pod) string {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:      []string{"istio-ca"},
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}
	resp, err := env.Client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, p.Spec.ServiceAccountName, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status.Token
}

// caClient is a client of istiod-lite's CA dialling from node's namespace with token.
func caClient(ctx context.Context, t *testing.T, node, token string) *caclient.Client {
	t.Helper()
	istiod, err := systemPod(ctx, "app=istiod", "")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := env.Client.CoreV1().ConfigMaps(testbed.SystemNamespace).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cm.Data["root-cert.pem"])) {
		t.Fatal("istio-ca-root-cert holds no certificate")
	}
	netns := env.Node(node).NetnsPath
	c, err := caclient.New(caclient.Config{
		Address: net.JoinHostPort(istiod.Status.PodIP, "15012"),
		TLS:     &tls.Config{RootCAs: roots, ServerName: "istiod.istio-system.svc"},
		Token:   func() (string, error) { return token, nil },
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return cluster.Dial(ctx, netns, "tcp", addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestE2ECAImpersonation checks the CA's node authorisation against real
// service-account tokens and TokenReview (F-SEC-1): node-a's ztunnel may obtain
// certificates for pods on node-a only, and a pod only for its own identity.
func TestE2ECAImpersonation(t *testing.T) {
	ctx := setup(t, 3*time.Minute)
	const ns = "e2e-ca"
	newNamespace(ctx, t, ns, true)
	alpha := sleeper(ctx, t, ns, "alpha", "node-a")
	sleeper(ctx, t, ns, "beta", "node-b")
	zt, err := systemPod(ctx, "app=ztunnel", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	id := func(sa string) spiffe.Identity {
		return spiffe.Identity{TrustDomain: "cluster.local", Namespace: ns, ServiceAccount: sa}
	}
	ztCA := caClient(ctx, t, "node-a", podToken(ctx, t, zt))
	podCA := caClient(ctx, t, "node-a", podToken(ctx, t, alpha))
	for _, tc := range []struct {
		name        string
		c           *caclient.Client
		id          spiffe.Identity
		impersonate bool
		allowed     bool
	}{
		{"ztunnel for a pod on its node", ztCA, id("alpha"), true, true},
		{"ztunnel for a pod on another node", ztCA, id("beta"), true, false},
		{"pod for itself", podCA, id("alpha"), false, true},
		{"pod for another identity", podCA, id("beta"), false, false},
		{"pod impersonating", podCA, id("alpha"), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := tc.c.Fetch(ctx, tc.id, tc.impersonate)
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.allowed && err == nil:
				t.Fatalf("issued a certificate for %s", cert.Identity)
			case !tc.allowed && !slices.Contains([]codes.Code{codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument}, status.Code(err)):
				t.Fatalf("refused with %v, want PermissionDenied, Unauthenticated or InvalidArgument", err)
			}
		})
	}
}
