package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/pkg/ca"
)

// Names of the CA Secrets, as istiod uses them.
const (
	// PluginCASecret holds an operator-supplied CA (Istio's "plug-in certs"): keys
	// ca-cert.pem, ca-key.pem, root-cert.pem and optionally cert-chain.pem, or the
	// kubernetes.io/tls shape tls.crt, tls.key, ca.crt (as cert-manager writes it).
	PluginCASecret = "cacerts"
	// DefaultCASecret holds the self-signed root istiod generates: keys ca-cert.pem,
	// ca-key.pem and root-cert.pem (istiod leaves root-cert.pem empty, meaning
	// ca-cert.pem; Ambit fills it in).
	DefaultCASecret = "istio-ca-secret"
	// caSecretType is the type istiod gives DefaultCASecret.
	caSecretType corev1.SecretType = "istio.io/ca-root"

	tlsSecretCert = "tls.crt"
	tlsSecretKey  = "tls.key"
	tlsSecretRoot = "ca.crt"
)

// CASecrets finds the mesh CA in Kubernetes Secrets of Namespace, in istiod's order:
// PluginCASecret if present, else SecretName, else a new self-signed root (ECDSA P-256,
// ca.RootTTL) stored as SecretName.
type CASecrets struct {
	// Client reads and creates the Secrets. Required.
	Client kubernetes.Interface
	// Namespace holding the Secrets (istiod's system namespace, istio-system).
	Namespace string
	// SecretName is the generated root's Secret; "" means DefaultCASecret.
	SecretName string
	// TrustDomain of the authority; "" means cluster.local.
	TrustDomain string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Load returns the authority. A Secret that exists but holds missing or invalid key
// material is an error (wrapping ca.ErrInvalidKeyMaterial), never replaced: a damaged
// CA must not be silently swapped for a new root. When two replicas race to create
// the Secret the loser reads the winner's. Other API errors are returned wrapped.
func (s *CASecrets) Load(ctx context.Context) (*ca.Authority, error) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	name := s.SecretName
	if name == "" {
		name = DefaultCASecret
	}
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	plugin, err := secrets.Get(ctx, PluginCASecret, metav1.GetOptions{})
	switch {
	case err == nil:
		a, err := s.authority(plugin, true)
		if err == nil {
			log.Info("ca root loaded from the plug-in secret", "secret", s.Namespace+"/"+PluginCASecret)
		}
		return a, err
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("load ca secret %s/%s: %w", s.Namespace, PluginCASecret, err)
	}
	for attempt := 0; ; attempt++ {
		sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			a, err := s.authority(sec, false)
			if err == nil {
				log.Info("ca root loaded", "secret", s.Namespace+"/"+name)
			}
			return a, err
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("load ca secret %s/%s: %w", s.Namespace, name, err)
		case attempt > 0:
			// Created by someone else, then gone again before we could read it.
			return nil, fmt.Errorf("load ca secret %s/%s: %w", s.Namespace, name, err)
		}
		sec, err = s.generate(name)
		if err != nil {
			return nil, err
		}
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
		switch {
		case err == nil:
			log.Info("generated a self-signed ca root", "secret", s.Namespace+"/"+name)
			return s.authority(sec, false)
		case !apierrors.IsAlreadyExists(err):
			return nil, fmt.Errorf("create ca secret %s/%s: %w", s.Namespace, name, err)
		}
		// Another replica created it first: use theirs.
	}
}

// generate makes a Secret holding a new self-signed root.
func (s *CASecrets) generate(name string) (*corev1.Secret, error) {
	certPEM, keyPEM, err := ca.GenerateRoot(s.trustDomain(), time.Now(), ca.RootTTL)
	if err != nil {
		return nil, fmt.Errorf("generate ca secret: %w", err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace},
		Type:       caSecretType,
		Data: map[string][]byte{
			ca.FileCACert:    certPEM,
			ca.FileCAKey:     keyPEM,
			ca.FileRootCert:  certPEM,
			ca.FileCertChain: nil,
		},
	}, nil
}

func (s *CASecrets) trustDomain() string {
	if s.TrustDomain == "" {
		return "cluster.local"
	}
	return s.TrustDomain
}

// authority builds the CA from a Secret's data; plugin selects the plug-in key names.
func (s *CASecrets) authority(sec *corev1.Secret, plugin bool) (*ca.Authority, error) {
	d := sec.Data
	cert, key, chain, root := d[ca.FileCACert], d[ca.FileCAKey], d[ca.FileCertChain], d[ca.FileRootCert]
	if plugin && len(cert) == 0 && len(d[tlsSecretCert]) > 0 {
		cert, key, chain, root = d[tlsSecretCert], d[tlsSecretKey], nil, d[tlsSecretRoot]
	}
	if !plugin && len(root) == 0 {
		root = cert // istiod's own istio-ca-secret: the self-signed cert is the root
	}
	var missing []string
	for _, f := range []struct {
		name string
		data []byte
	}{{"ca cert", cert}, {"ca key", key}, {"root cert", root}} {
		if len(f.data) == 0 {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("load ca secret %s/%s: %w: missing %v", sec.Namespace, sec.Name, ca.ErrInvalidKeyMaterial, missing)
	}
	a, err := ca.New(cert, key, chain, root, s.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("load ca secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	return a, nil
}
