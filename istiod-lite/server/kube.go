package server

import (
	"context"
	"fmt"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	"github.com/ambitmesh/ambit/istiod-lite/kube"
	"github.com/ambitmesh/ambit/istiod-lite/l7"
	"github.com/ambitmesh/ambit/istiod-lite/waypoint"
	"github.com/ambitmesh/ambit/pkg/kubeclient"
	"github.com/ambitmesh/ambit/pkg/kubefile"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// Client-side rate limits towards the API server. client-go's defaults (5 QPS, burst
// 10) are too low to publish the root ConfigMap in many namespaces at start.
const (
	kubeQPS   = 50
	kubeBurst = 100
)

// runKube is Kubernetes mode: CA from Secrets, config from informers, TokenReview for
// CA callers, root ConfigMaps and Events written back.
func runKube(ctx context.Context, cfg Config) error {
	rc, err := restConfig(cfg)
	if err != nil {
		return err
	}
	kc, err := kubernetes.NewForConfig(kubeclient.Protobuf(rc))
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	ic, err := istioclient.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("istio client: %w", err)
	}
	gc, err := gatewayclient.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("gateway api client: %w", err)
	}
	systemNS := cfg.SystemNamespace
	if systemNS == "" {
		systemNS = wire.RootNamespace
	}
	authority, err := (&kube.CASecrets{
		Client: kc, Namespace: systemNS, SecretName: cfg.CASecret, TrustDomain: cfg.TrustDomain, Logger: cfg.Logger,
	}).Load(ctx)
	if err != nil {
		return err
	}
	src := &kube.Source{Client: kc, Istio: ic, Gateway: gc, Debounce: cfg.Debounce, Logger: cfg.Logger}
	reviews := &caserver.TokenReviewAuthenticator{Client: kc, TrustDomain: authority.TrustDomain(), Pod: src.Pod}
	p, err := newPlane(cfg, authority, []caserver.Authenticator{reviews})
	if err != nil {
		return err
	}
	events := &kube.EventReporter{Client: kc, Logger: cfg.Logger}
	status := &kube.StatusWriter{Gateway: gc, Istio: ic, Logger: cfg.Logger}
	p.onL7 = func(r l7.Result) { status.Report(r.Status) }
	src.OnChange = func(s *kubefile.Snapshot) {
		m := p.apply(s)
		events.Report(problemsOf(m, s))
	}
	roots := &kube.RootCertPublisher{Client: kc, RootPEM: authority.RootPEM(), Logger: cfg.Logger}
	parts := []func(context.Context) error{src.Run, roots.Run, events.Run, status.Run}
	if wc := cfg.Waypoint; wc.Image != "" || wc.Engine == waypoint.EngineEnvoy {
		wc.ClusterID, wc.TrustDomain = cfg.ClusterID, authority.TrustDomain()
		ctrl, err := waypoint.New(kc, gc, wc, cfg.Logger)
		if err != nil {
			return fmt.Errorf("waypoint controller: %w", err)
		}
		p.waypoints.OnError = ctrl.SetConfigError
		parts = append(parts, ctrl.Run)
	} else {
		cfg.Logger.Info("waypoint controller off: no --waypoint-image")
	}
	return p.run(ctx, parts...)
}

// restConfig returns cfg.RESTConfig or loads cfg.Kubeconfig, with istiod-lite's user
// agent and rate limits.
func restConfig(cfg Config) (*rest.Config, error) {
	rc := cfg.RESTConfig
	if rc == nil {
		var err error
		if rc, err = kubeclient.RESTConfig(cfg.Kubeconfig, "istiod-lite"); err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "istiod-lite"
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = kubeQPS, kubeBurst
	}
	return rc, nil
}
