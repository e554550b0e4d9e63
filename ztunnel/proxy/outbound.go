package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
)

// dialTimeout bounds upstream TCP connects and HBONE handshakes.
const dialTimeout = 10 * time.Second

// handleOutbound carries one captured outbound connection: its local address is the
// original destination (the eBPF sk_lookup redirection keeps it).
func (p *Proxy) handleOutbound(ctx context.Context, c net.Conn) {
	dst := localAddrPort(c)
	src := remoteAddrPort(c)
	rt, err := p.cfg.Router.Route(dst)
	if err != nil {
		p.log.Warn("outbound: no route", "dst", dst, "err", err)
		return
	}
	conn := metrics.Connection{
		Reporter:    metrics.ReporterSource,
		Source:      metrics.PeerOf(p.cfg.Store.WorkloadByIP(p.pod.IP), p.pod.Identity),
		Destination: metrics.PeerOf(rt.Workload, rt.Identity),
		Service:     serviceName(rt),
		Security:    metrics.SecurityNone,
	}
	if rt.HBONE {
		conn.Security = metrics.SecurityMutualTLS
	}
	start := time.Now()
	p.cfg.Metrics.Opened(conn)
	var stats hbone.Stats
	if rt.HBONE {
		stats, err = p.outboundHBONE(ctx, c, src, rt)
	} else {
		stats, err = p.passthrough(ctx, c, rt.Target)
	}
	p.cfg.Metrics.Closed(conn, stats.Sent, stats.Received)
	p.log.Info("outbound connection", "src", src, "dst", dst, "target", rt.Target, "hbone", rt.HBONE,
		"dst_identity", identityString(rt.Identity), "sent", stats.Sent, "received", stats.Received,
		"duration", time.Since(start).Round(time.Microsecond), "err", errString(err))
}

func (p *Proxy) outboundHBONE(ctx context.Context, c net.Conn, src netip.AddrPort, rt Route) (hbone.Stats, error) {
	hdr := http.Header{}
	hdr.Set("Forwarded", `for="`+src.String()+`"`)
	hdr.Set("Baggage", baggage(p.pod))
	return p.client.Proxy(ctx, hbone.Request{
		Address:    rt.Gateway.String(),
		Authority:  rt.Target.String(),
		Identities: []spiffe.Identity{rt.Identity},
		Header:     hdr,
	}, c)
}

// passthrough dials the destination from inside the pod's netns (uncaptured) and
// copies both ways, as Istio's ztunnel does for out-of-mesh destinations (F-L4-4).
func (p *Proxy) passthrough(ctx context.Context, c net.Conn, target netip.AddrPort) (hbone.Stats, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	up, err := p.pod.Netns.Dial(dctx, target)
	cancel()
	if err != nil {
		return hbone.Stats{}, err
	}
	defer up.Close()
	sent, recv, err := pipe(c, up)
	return hbone.Stats{Sent: sent, Received: recv}, err
}

func baggage(pod Pod) string {
	return "k8s.namespace.name=" + pod.Namespace + ",k8s.pod.name=" + pod.Name
}

func serviceName(rt Route) string {
	if rt.Service == nil {
		return ""
	}
	return rt.Service.Hostname
}

func identityString(id spiffe.Identity) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func localAddrPort(c net.Conn) netip.AddrPort  { return addrPort(c.LocalAddr()) }
func remoteAddrPort(c net.Conn) netip.AddrPort { return addrPort(c.RemoteAddr()) }

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
