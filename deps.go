//go:build deps

// Package main pins the module's planned dependencies while components are built; remove once every dependency is imported by real code.
package main

import (
	_ "golang.org/x/net/http2"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/sync/errgroup"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/proto"
	_ "istio.io/api/security/v1alpha1"
	_ "istio.io/istio/pkg/workloadapi"
	_ "istio.io/istio/pkg/workloadapi/security"
	_ "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/fsnotify/fsnotify"
	_ "sigs.k8s.io/yaml"
	_ "k8s.io/api/core/v1"
	_ "github.com/spf13/cobra"
	_ "github.com/containernetworking/cni/pkg/skel"
)

func main() {}
