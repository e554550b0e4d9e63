// Command istiod-lite is Ambit's control plane: it serves workload discovery (WDS) to
// ztunnels and signs workload certificates over Istio's CA API.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ambitmesh/ambit/pkg/kubeclient"
	"k8s.io/klog/v2"

	"github.com/ambitmesh/ambit/istiod-lite/caserver"
	"github.com/ambitmesh/ambit/istiod-lite/kube"
	"github.com/ambitmesh/ambit/istiod-lite/server"
	"github.com/ambitmesh/ambit/istiod-lite/waypoint"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

func main() {
	var cfg server.Config
	var level slog.Level
	var dnsNames, trustedAccounts string
	flag.StringVar(&cfg.ConfigDir, "config-dir", "", "directory of Kubernetes YAML (file config source)")
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file (Kubernetes config source); with neither this nor --config-dir, KUBECONFIG or else the in-cluster config")
	flag.StringVar(&cfg.SystemNamespace, "system-namespace", wire.RootNamespace, "namespace of the CA secrets (Kubernetes mode)")
	flag.StringVar(&cfg.CASecret, "ca-secret", kube.DefaultCASecret, `secret of the generated CA root (Kubernetes mode; the plug-in secret "cacerts" is used first when present)`)
	flag.StringVar(&trustedAccounts, "trusted-node-accounts", wire.DefaultZtunnelNamespace+"/"+wire.DefaultZtunnelAccount, "comma-separated <ns>/<sa> allowed to request certificates for pods on their node")
	flag.StringVar(&cfg.CADir, "ca-dir", "./ca", "CA files in file mode (Istio plug-in layout: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem); generated when absent")
	flag.StringVar(&cfg.TrustDomain, "trust-domain", spiffe.DefaultTrustDomain, "SPIFFE trust domain")
	flag.StringVar(&cfg.ClusterID, "cluster-id", wire.DefaultClusterID, "cluster id")
	flag.StringVar(&cfg.GRPCAddr, "grpc-addr", fmt.Sprintf(":%d", wire.PortXDSTLS), "xDS + CA over TLS")
	flag.StringVar(&cfg.GRPCPlaintextAddr, "grpc-plaintext-addr", "", fmt.Sprintf("optional plaintext xDS + CA (e.g. :%d)", wire.PortXDSPlain))
	flag.StringVar(&dnsNames, "tls-dns-names", "istiod.istio-system.svc,istiod-lite.istio-system.svc", "comma-separated DNS names of the serving certificate")
	flag.StringVar(&cfg.TokensFile, "tokens-file", "", `CA bearer tokens: lines "<token> <ns>/<sa> [node=<node>]"`)
	flag.StringVar(&cfg.MonitoringAddr, "monitoring-addr", fmt.Sprintf(":%d", wire.PortMonitoring), "monitoring listen address (empty: off)")
	flag.DurationVar(&cfg.Debounce, "debounce", 0, "window that gathers config changes into one push, from the first change (0: 20ms)")
	flag.TextVar(&level, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")
	flag.StringVar(&cfg.Waypoint.Image, "waypoint-image", "", "image of waypoint Deployments made for istio-waypoint Gateways (empty: no waypoint controller)")
	flag.StringVar(&cfg.Waypoint.Engine, "waypoint-engine", waypoint.EngineAmbit, `waypoint engine: "ambit" (the Go waypoint) or "envoy" (stock Envoy)`)
	flag.StringVar(&cfg.Waypoint.EnvoyImage, "waypoint-envoy-image", "", "Envoy image for --waypoint-engine=envoy")
	flag.StringVar(&cfg.Waypoint.XDSAddress, "waypoint-xds-address", waypoint.DefaultXDSAddress, `xDS address waypoints connect to; empty: this pod's IP ($POD_IP) and the --grpc-addr port`)
	flag.StringVar(&cfg.Waypoint.XDSServerName, "waypoint-xds-server-name", waypoint.DefaultXDSServerName, "TLS name waypoints expect of istiod-lite")
	flag.StringVar(&cfg.Waypoint.LogLevel, "waypoint-log-level", waypoint.DefaultLogLevel, "waypoints' log level")
	flag.Parse()
	if cfg.Waypoint.XDSAddress == "" {
		_, port, _ := net.SplitHostPort(cfg.GRPCAddr)
		cfg.Waypoint.XDSAddress = net.JoinHostPort(os.Getenv("POD_IP"), port)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(cfg.Logger) // client-go's logs in the same JSON stream
	cfg.TLSDNSNames = strings.Split(dnsNames, ",")
	var err error
	if cfg.TrustedNodeAccounts, err = caserver.ParseAccounts(trustedAccounts); err != nil {
		usage(fmt.Sprintf("--trusted-node-accounts: %v", err))
	}
	switch {
	case cfg.ConfigDir != "" && cfg.Kubeconfig != "":
		usage("--config-dir and --kubeconfig are exclusive")
	case cfg.ConfigDir == "" && kubeclient.Available(cfg.Kubeconfig):
		if cfg.RESTConfig, err = kubeclient.RESTConfig(cfg.Kubeconfig, "istiod-lite"); err != nil {
			usage(err.Error())
		}
	case cfg.ConfigDir == "":
		usage("set --config-dir or --kubeconfig (or KUBECONFIG, or run in a cluster)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("istiod-lite failed", "err", err)
		os.Exit(1)
	}
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "istiod-lite:", msg)
	os.Exit(2)
}
