package kube

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ambitmesh/ambit/pkg/ca"
)

func secret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system"}, Data: data}
}

func rootPair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := ca.GenerateRoot("cluster.local", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestCASecretsLoad(t *testing.T) {
	pluginCert, pluginKey := rootPair(t)
	selfCert, selfKey := rootPair(t)
	for _, tc := range []struct {
		name     string
		objects  []runtime.Object
		wantRoot []byte // nil: a newly generated root
		wantErr  error
	}{
		{name: "nothing: generate and store", wantRoot: nil},
		{name: "istio-ca-secret present", wantRoot: selfCert, objects: []runtime.Object{
			secret(DefaultCASecret, map[string][]byte{"ca-cert.pem": selfCert, "ca-key.pem": selfKey, "root-cert.pem": selfCert}),
		}},
		{name: "istio-ca-secret as istiod writes it (empty root)", wantRoot: selfCert, objects: []runtime.Object{
			secret(DefaultCASecret, map[string][]byte{"ca-cert.pem": selfCert, "ca-key.pem": selfKey, "root-cert.pem": {}, "cert-chain.pem": {}}),
		}},
		{name: "cacerts wins", wantRoot: pluginCert, objects: []runtime.Object{
			secret(DefaultCASecret, map[string][]byte{"ca-cert.pem": selfCert, "ca-key.pem": selfKey, "root-cert.pem": selfCert}),
			secret(PluginCASecret, map[string][]byte{"ca-cert.pem": pluginCert, "ca-key.pem": pluginKey, "root-cert.pem": pluginCert, "cert-chain.pem": pluginCert}),
		}},
		{name: "cacerts in kubernetes.io/tls shape", wantRoot: pluginCert, objects: []runtime.Object{
			secret(PluginCASecret, map[string][]byte{"tls.crt": pluginCert, "tls.key": pluginKey, "ca.crt": pluginCert}),
		}},
		{name: "damaged cacerts is not replaced", wantErr: ca.ErrInvalidKeyMaterial, objects: []runtime.Object{
			secret(PluginCASecret, map[string][]byte{"ca-cert.pem": pluginCert, "root-cert.pem": pluginCert}),
		}},
		{name: "mismatched key", wantErr: ca.ErrInvalidKeyMaterial, objects: []runtime.Object{
			secret(DefaultCASecret, map[string][]byte{"ca-cert.pem": selfCert, "ca-key.pem": pluginKey, "root-cert.pem": selfCert}),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc := fake.NewClientset(tc.objects...)
			s := &CASecrets{Client: kc, Namespace: "istio-system", TrustDomain: "cluster.local", Logger: testLogger(t)}
			a, err := s.Load(t.Context())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			stored, err := kc.CoreV1().Secrets("istio-system").Get(t.Context(), DefaultCASecret, metav1.GetOptions{})
			if tc.wantRoot == nil {
				if err != nil {
					t.Fatalf("generated root not stored: %v", err)
				}
				if stored.Type != "istio.io/ca-root" || !bytes.Equal(stored.Data["root-cert.pem"], a.RootPEM()) {
					t.Errorf("stored secret type %q, root matches: %v", stored.Type, bytes.Equal(stored.Data["root-cert.pem"], a.RootPEM()))
				}
				// A restart loads the same root.
				again, err := s.Load(t.Context())
				if err != nil || !bytes.Equal(again.RootPEM(), a.RootPEM()) {
					t.Errorf("reload: err %v, same root %v", err, err == nil && bytes.Equal(again.RootPEM(), a.RootPEM()))
				}
				return
			}
			if !bytes.Equal(a.RootPEM(), tc.wantRoot) {
				t.Error("loaded the wrong root")
			}
		})
	}
}

// TestCASecretsCreateRace: another replica creates the secret between our Get and
// Create; we must use its root, not ours.
func TestCASecretsCreateRace(t *testing.T) {
	theirCert, theirKey := rootPair(t)
	kc := fake.NewClientset()
	var raced atomic.Bool
	kc.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if raced.Swap(true) {
			return false, nil, nil
		}
		theirs := secret(DefaultCASecret, map[string][]byte{"ca-cert.pem": theirCert, "ca-key.pem": theirKey, "root-cert.pem": theirCert})
		if err := kc.Tracker().Add(theirs); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("secrets"), DefaultCASecret)
	})
	a, err := (&CASecrets{Client: kc, Namespace: "istio-system", Logger: testLogger(t)}).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RootPEM(), theirCert) {
		t.Error("lost the race but kept our own root")
	}
}

func TestCASecretsAPIError(t *testing.T) {
	kc := fake.NewClientset()
	kc.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "cacerts", errors.New("rbac"))
	})
	if _, err := (&CASecrets{Client: kc, Namespace: "istio-system", Logger: testLogger(t)}).Load(t.Context()); !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v, want the Forbidden error", err)
	}
	if acts := kc.Actions(); len(acts) != 1 {
		t.Errorf("%d API calls after a forbidden read, want 1 (nothing created)", len(acts))
	}
}
