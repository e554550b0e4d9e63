// Command istiod-lite is Ambit's control plane: it serves workload discovery (WDS) to
// ztunnels and signs workload certificates over Istio's CA API.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ambitmesh/ambit/istiod-lite/server"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
)

func main() {
	var cfg server.Config
	var level slog.Level
	var dnsNames string
	flag.StringVar(&cfg.ConfigDir, "config-dir", "", "directory of Kubernetes YAML (file config source)")
	flag.StringVar(&cfg.CADir, "ca-dir", "./ca", "CA files (Istio plug-in layout: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem); generated when absent")
	flag.StringVar(&cfg.TrustDomain, "trust-domain", spiffe.DefaultTrustDomain, "SPIFFE trust domain")
	flag.StringVar(&cfg.ClusterID, "cluster-id", wire.DefaultClusterID, "cluster id")
	flag.StringVar(&cfg.GRPCAddr, "grpc-addr", fmt.Sprintf(":%d", wire.PortXDSTLS), "xDS + CA over TLS")
	flag.StringVar(&cfg.GRPCPlaintextAddr, "grpc-plaintext-addr", "", fmt.Sprintf("optional plaintext xDS + CA (e.g. :%d)", wire.PortXDSPlain))
	flag.StringVar(&dnsNames, "tls-dns-names", "istiod.istio-system.svc,istiod-lite.istio-system.svc", "comma-separated DNS names of the serving certificate")
	flag.StringVar(&cfg.TokensFile, "tokens-file", "", `CA bearer tokens: lines "<token> <ns>/<sa> [node=<node>]"`)
	flag.StringVar(&cfg.MonitoringAddr, "monitoring-addr", fmt.Sprintf(":%d", wire.PortMonitoring), "monitoring listen address (empty: off)")
	flag.TextVar(&level, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")
	flag.Parse()
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.TLSDNSNames = strings.Split(dnsNames, ",")
	if cfg.ConfigDir == "" {
		fmt.Fprintln(os.Stderr, "istiod-lite: --config-dir is required (Kubernetes mode comes in a later release)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("istiod-lite failed", "err", err)
		os.Exit(1)
	}
}
