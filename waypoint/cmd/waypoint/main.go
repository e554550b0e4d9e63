// Command waypoint is Ambit's default waypoint engine: the L7 proxy deployed per
// Gateway of class istio-waypoint. It takes Envoy xDS from istiod-lite over ADS,
// terminates HBONE on 15008 and forwards HTTP to destinations over HBONE.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/waypoint/accesslog"
	"github.com/ambitmesh/ambit/waypoint/app"
	"github.com/ambitmesh/ambit/waypoint/xds"
)

func main() {
	var cfg app.Config
	var level slog.Level
	flag.StringVar(&cfg.XDSAddress, "xds-address", fmt.Sprintf("istiod.istio-system.svc:%d", wire.PortXDSTLS), "istiod-lite xDS address host:port")
	flag.StringVar(&cfg.XDSServerName, "xds-server-name", "istiod.istio-system.svc", "TLS server name of istiod-lite")
	flag.StringVar(&cfg.RootCert, "root-cert", "", "mesh root certificate PEM (empty: plaintext xDS, local tests only)")
	flag.StringVar(&cfg.TokenFile, "token-file", "", "projected service account token (audience istio-ca)")
	flag.StringVar(&cfg.ClusterID, "cluster-id", wire.DefaultClusterID, "cluster id")
	flag.StringVar(&cfg.TrustDomain, "trust-domain", spiffe.DefaultTrustDomain, "SPIFFE trust domain")
	flag.StringVar(&cfg.AdminAddr, "admin-addr", fmt.Sprintf("127.0.0.1:%d", wire.PortAdmin), "admin listen address")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", fmt.Sprintf(":%d", wire.PortMetrics), "Prometheus metrics listen address")
	flag.StringVar(&cfg.ReadinessAddr, "readiness-addr", fmt.Sprintf(":%d", wire.PortReadiness), "readiness listen address")
	flag.TextVar(&level, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")
	flag.DurationVar(&cfg.AccessLogFlushInterval, "access-log-flush-interval", accesslog.DefaultFlushInterval,
		"how often buffered access log lines are written to stdout (Envoy's access_log_flush_interval)")
	flag.Parse()
	cfg.HBONEAddr = fmt.Sprintf(":%d", wire.PortHBONE)
	cfg.Node = xds.NodeInfo{
		PodName:        os.Getenv("POD_NAME"),
		PodNamespace:   os.Getenv("POD_NAMESPACE"),
		InstanceIP:     os.Getenv("INSTANCE_IP"),
		ServiceAccount: os.Getenv("SERVICE_ACCOUNT"),
		GatewayName:    os.Getenv("GATEWAY_NAME"),
		ClusterID:      cfg.ClusterID,
	}
	// Logs go to stderr; stdout carries the access log (envoy.access_loggers.stdout).
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.AccessLog = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("waypoint failed", "err", err)
		stop()
		os.Exit(1)
	}
}
