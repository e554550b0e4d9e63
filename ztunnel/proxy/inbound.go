package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/pkg/wire"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
	"github.com/ambitmesh/ambit/ztunnel/rbac"
)

// connectInbound is the HBONE server's upstream dial: the CONNECT target must be this
// pod's IP (400 otherwise, as Istio's ztunnel inbound), the connection must be allowed by
// authorization policy (401 otherwise, F-SEC-3), and the app is reached from the tunnel
// peer's IP so the app sees the client pod as the source (F-L4-1).
func (p *Proxy) connectInbound(ctx context.Context, r *hbone.ServerRequest) (net.Conn, error) {
	if r.Authority.Addr().Unmap() != p.pod.IP {
		return nil, fmt.Errorf("connect %s: %w: not this pod (%s)", r.Authority, hbone.ErrBadRequest, p.pod.IP)
	}
	if reservedPort(r.Authority.Port()) {
		return nil, fmt.Errorf("connect %s: %w: reserved port", r.Authority, hbone.ErrBadRequest)
	}
	src := addrPort(r.RemoteAddr).Addr()
	rc := rbac.Connection{SrcIdentity: r.Peer, SrcIP: src, DstIP: p.pod.IP, DstPort: r.Authority.Port()}
	d, dst, gen, err := p.authorize(rc)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", r.Authority, err)
	}
	if !d.Allow {
		return nil, p.refuseHBONE(r, d)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	up, err := p.pod.Netns.DialApp(dctx, src, r.Authority)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", r.Authority, err)
	}
	lc := newLiveConn(rc, dst, func() { resetConn(up) })
	if d := p.track(lc, gen); !d.Allow {
		up.Close()
		return nil, p.refuseHBONE(r, d)
	}
	p.cfg.Metrics.Opened(p.inboundConnection(r))
	p.opened.Store(r, lc)
	return up, nil
}

// refuseHBONE counts a CONNECT denied by policy and returns its error (answered 401).
func (p *Proxy) refuseHBONE(r *hbone.ServerRequest, d rbac.Decision) error {
	conn := p.inboundConnection(r)
	p.cfg.Metrics.Opened(conn)
	p.cfg.Metrics.Denied(conn, 0, 0)
	return fmt.Errorf("connect %s: %w: %s %s", r.Authority, hbone.ErrDenied, d.Reason, d.Policy)
}

// inboundDone records a finished HBONE stream. On the server side Stats.Received is
// what the client sent (request bytes) and Stats.Sent the app's answer. Streams refused
// before the upstream connected were counted (policy) or never opened and are only logged.
func (p *Proxy) inboundDone(r *hbone.ServerRequest, s hbone.Stats, err error) {
	if v, ok := p.opened.LoadAndDelete(r); ok {
		lc := v.(*liveConn)
		p.live.remove(lc)
		if lc.denied.Load() {
			p.cfg.Metrics.Denied(p.inboundConnection(r), s.Received, s.Sent)
		} else {
			p.cfg.Metrics.Closed(p.inboundConnection(r), s.Received, s.Sent)
		}
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
// delivers it to the app with the client's source IP, if authorization policy allows a
// connection without a peer identity; a denied one is reset (F-SEC-2, F-SEC-3).
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
	rc := rbac.Connection{SrcIP: src.Addr(), DstIP: dst.Addr(), DstPort: dst.Port()}
	d, dstW, gen, err := p.authorize(rc)
	if err != nil {
		p.log.Warn("inbound plaintext: refused", "src", src, "dst", dst, "err", err)
		return
	}
	if !d.Allow {
		p.refusePlain(c, conn, src, dst, d)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	up, err := p.pod.Netns.DialApp(dctx, src.Addr(), dst)
	cancel()
	if err != nil {
		p.log.Warn("inbound plaintext: app unreachable", "src", src, "dst", dst, "err", err)
		return
	}
	defer up.Close()
	lc := newLiveConn(rc, dstW, func() { resetConn(c); resetConn(up) })
	if d := p.track(lc, gen); !d.Allow {
		resetConn(up)
		p.refusePlain(c, conn, src, dst, d)
		return
	}
	defer p.live.remove(lc)
	start := time.Now()
	p.cfg.Metrics.Opened(conn)
	recv, sent, err := pipe(c, up)
	if lc.denied.Load() {
		p.cfg.Metrics.Denied(conn, recv, sent)
	} else {
		p.cfg.Metrics.Closed(conn, recv, sent)
	}
	p.log.Info("inbound plaintext connection", "src", src, "dst", dst, "received", recv, "sent", sent,
		"duration", time.Since(start).Round(time.Microsecond), "denied", lc.denied.Load(), "err", errString(err))
}

// refusePlain resets a plaintext connection denied by policy and counts it.
func (p *Proxy) refusePlain(c net.Conn, conn metrics.Connection, src, dst netip.AddrPort, d rbac.Decision) {
	resetConn(c)
	p.cfg.Metrics.Opened(conn)
	p.cfg.Metrics.Denied(conn, 0, 0)
	p.log.Info("inbound plaintext: denied by policy", "src", src, "dst", dst, "policy", d.Policy, "reason", d.Reason)
}

// reservedPort reports ztunnel's own in-pod ports (and 0), which are never a target.
func reservedPort(port uint16) bool {
	switch port {
	case 0, wire.PortOutbound, wire.PortInbound, wire.PortHBONE, wire.PortDNS:
		return true
	}
	return false
}
