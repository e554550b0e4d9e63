// Package proxy is the waypoint's data path, implementing the subset of Envoy
// semantics istiod-lite configures (notes/issue5.md sections 2 and 5):
//
//   - inbound: HBONE termination on 15008 with pkg/hbone's server (mutual TLS 1.3,
//     clients chained to ROOTCA in the trust domain); each CONNECT stream's :authority
//     selects a main_internal filter chain (none: 503);
//   - HTTP chains: the stream is served as HTTP/1.1 or h2c (prior knowledge) by a
//     net/http server; per request: RBAC filters (403 "RBAC: access denied"), route
//     match (404), fault (delay, abort), redirect or forward with weighted clusters,
//     load balancing over outlier-available endpoints, circuit breaking (503 +
//     x-envoy-overloaded), timeouts (504), retries, mirrors and header mutations; an
//     access log line and Istio's request metrics for each request;
//   - TCP chains: a byte pipe to the cluster;
//   - upstream: every request leaves through an HBONE CONNECT to the endpoint's
//     tunnel.address with :authority tunnel.destination, the server verified against
//     ROOTCA and the trust domain, connections pooled per destination.
package proxy
