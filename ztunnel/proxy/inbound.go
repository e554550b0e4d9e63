package proxy

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
)

// connectInbound is the HBONE server's upstream dial: the CONNECT target must be this
// pod's IP (400 otherwise, as Istio's ztunnel inbound), and the app is reached from the
// tunnel peer's IP so the app sees the client pod as the source (F-L4-1).
func (p *Proxy) connectInbound(ctx context.Context, r *hbone.ServerRequest) (net.Conn, error) {
	if r.Authority.Addr().Unmap() != p.pod.IP {
		return nil, fmt.Errorf("connect %s: %w: not this pod (%s)", r.Authority, hbone.ErrBadRequest, p.pod.IP)
	}
	if reservedPort(r.Authority.Port()) {
		return nil, fmt.Errorf("connect %s: %w: reserved port", r.Authority, hbone.ErrBadRequest)
	}
	src := addrPort(r.RemoteAddr).Addr()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	up, err := p.pod.Netns.DialApp(dctx, src, r.Authority)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", r.Authority, err)
	}
	p.cfg.Metrics.Opened(p.inboundConnection(r))
	p.opened.Store(r, struct{}{})
	return up, nil
}

// inboundDone records a finished HBONE stream. On the server side Stats.Received is
// what the client sent (request bytes) and Stats.Sent the app's answer. Streams refused
// before the upstream connected were never opened and are only logged.
func (p *Proxy) inboundDone(r *hbone.ServerRequest, s hbone.Stats, err error) {
	if _, ok := p.opened.LoadAndDelete(r); ok {
		p.cfg.Metrics.Closed(p.inboundConnection(r), s.Received, s.Sent)
	}
	p.log.Info("inbound hbone connection", "src", r.RemoteAddr.String(), "dst", r.Authority.String(),
		"src_identity", r.Peer.String(), "received", s.Received, "sent", s.Sent, "err", errString(err))
}

func (p *Proxy) inboundConnection(r *hbone.ServerRequest) metrics.Connection {
	return metrics.Connection{
		Reporter:    metrics.ReporterDestination,
		Source:      metrics.PeerOf(p.cfg.Store.WorkloadByIP(addrPort(r.RemoteAddr).Addr()), r.Peer),
		Destination: metrics.PeerOf(p.cfg.Store.WorkloadByIP(p.pod.IP), p.pod.Identity),
		Security:    metrics.SecurityMutualTLS,
	}
}

// handleInboundPlain accepts plaintext from outside the mesh (PERMISSIVE, F-L4-4) and
// delivers it to the app with the client's source IP.
func (p *Proxy) handleInboundPlain(ctx context.Context, c net.Conn) {
	dst := localAddrPort(c)
	src := remoteAddrPort(c)
	if dst.Addr() != p.pod.IP || reservedPort(dst.Port()) {
		p.log.Warn("inbound plaintext: not addressed to this pod's app; dropped", "src", src, "dst", dst)
		return
	}
	conn := metrics.Connection{
		Reporter:    metrics.ReporterDestination,
		Source:      metrics.PeerOf(p.cfg.Store.WorkloadByIP(src.Addr()), spiffe.Identity{}),
		Destination: metrics.PeerOf(p.cfg.Store.WorkloadByIP(p.pod.IP), p.pod.Identity),
		Security:    metrics.SecurityNone,
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	up, err := p.pod.Netns.DialApp(dctx, src.Addr(), dst)
	cancel()
	if err != nil {
		p.log.Warn("inbound plaintext: app unreachable", "src", src, "dst", dst, "err", err)
		return
	}
	defer up.Close()
	start := time.Now()
	p.cfg.Metrics.Opened(conn)
	recv, sent, err := pipe(c, up)
	p.cfg.Metrics.Closed(conn, recv, sent)
	p.log.Info("inbound plaintext connection", "src", src, "dst", dst, "received", recv, "sent", sent,
		"duration", time.Since(start).Round(time.Microsecond), "err", errString(err))
}

// reservedPort reports ztunnel's own in-pod ports (and 0), which are never a target.
func reservedPort(port uint16) bool {
	switch port {
	case 0, wire.PortOutbound, wire.PortInbound, wire.PortHBONE, wire.PortDNS:
		return true
	}
	return false
}
