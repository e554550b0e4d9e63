// Package proxy is ztunnel's per-pod L4 proxy: for one enrolled pod it serves the three
// in-pod listeners (15001 outbound capture, 15006 inbound plaintext, 15008 HBONE) and
// carries each connection over HBONE, by plaintext delivery, or by passthrough, as
// Istio's ztunnel does in in-pod mode. Inbound connections are subject to authorization
// policy at admission and again on every policy change (authz.go); outbound ones are
// not (as Istio: policy is enforced at the destination).
package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/ambitmesh/ambit/pkg/hbone"
	"github.com/ambitmesh/ambit/pkg/spiffe"
	"github.com/ambitmesh/ambit/ztunnel/metrics"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

// Netns is the slice of a pod network namespace the proxy needs: dialing out of it
// uncaptured, and delivering to the app with a preserved client source IP.
type Netns interface {
	Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	DialApp(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error)
}

// Certificates yields this node's workload certificates, one per identity.
type Certificates interface {
	// TLSCertificate returns the current certificate of id, fetching it if needed.
	TLSCertificate(ctx context.Context, id spiffe.Identity) (*tls.Certificate, error)
	// Roots returns the mesh roots.
	Roots() *x509.CertPool
}

// Config is what every pod proxy on a node shares.
type Config struct {
	Store       *state.Store
	Router      *Router
	Certs       Certificates
	Metrics     *metrics.Metrics
	TrustDomain string
	Logger      *slog.Logger
}

// Pod identifies the enrolled pod a Proxy serves.
type Pod struct {
	UID       string // Kubernetes pod uid
	Name      string
	Namespace string
	Identity  spiffe.Identity
	IP        netip.Addr
	Netns     Netns
}

// Listeners are the pod's in-pod listeners, opened inside its network namespace.
type Listeners struct {
	Outbound, Inbound, HBONE net.Listener
}

// Proxy serves one enrolled pod.
type Proxy struct {
	cfg    Config
	pod    Pod
	log    *slog.Logger
	client *hbone.Client
	server *hbone.Server
	opened sync.Map  // *hbone.ServerRequest -> *liveConn of inbound streams counted as opened
	live   liveConns // open inbound connections, re-decided on policy changes
}

// New builds the proxy for pod; Run starts it.
func New(cfg Config, pod Pod) *Proxy {
	p := &Proxy{cfg: cfg, pod: pod, log: cfg.Logger.With("pod", pod.Namespace+"/"+pod.Name)}
	p.client = hbone.NewClient(hbone.ClientConfig{
		GetClientCertificate: func() (*tls.Certificate, error) { return p.certificate() },
		Roots:                cfg.Certs.Roots,
		TrustDomain:          cfg.TrustDomain,
		Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial hbone peer: %w", err)
			}
			return pod.Netns.Dial(ctx, ap)
		},
	})
	p.server = hbone.NewServer(hbone.ServerConfig{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.certificate() },
		Roots:          cfg.Certs.Roots,
		TrustDomain:    cfg.TrustDomain,
		Connect:        p.connectInbound,
		OnStreamDone:   p.inboundDone,
	})
	return p
}

// certFetchTimeout bounds a handshake's wait for the pod's certificate from the CA.
const certFetchTimeout = 10 * time.Second

// certificate returns the pod's current certificate for a TLS handshake.
func (p *Proxy) certificate() (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), certFetchTimeout)
	defer cancel()
	return p.cfg.Certs.TLSCertificate(ctx, p.pod.Identity)
}

// Run serves the listeners until ctx ends, then closes them and the HBONE pool, and
// waits for its accept loops. Open connections are closed when ctx ends.
func (p *Proxy) Run(ctx context.Context, ls Listeners) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	run(func() error { return p.acceptLoop(ctx, ls.Outbound, p.handleOutbound) })
	run(func() error { return p.acceptLoop(ctx, ls.Inbound, p.handleInboundPlain) })
	run(func() error { return p.server.Serve(ctx, ls.HBONE) })
	run(func() error {
		p.enforcePolicies(ctx)
		return nil
	})
	run(func() error {
		// Prefetch the pod's certificate so its first connection does not wait for the CA.
		if _, err := p.cfg.Certs.TLSCertificate(ctx, p.pod.Identity); err != nil && ctx.Err() == nil {
			p.log.Warn("certificate prefetch failed; retried on first use", "identity", p.pod.Identity.String(), "err", err)
		}
		return nil
	})
	<-ctx.Done()
	for _, l := range []net.Listener{ls.Outbound, ls.Inbound, ls.HBONE} {
		l.Close()
	}
	wg.Wait()
	p.client.Close()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// acceptLoop accepts until the listener closes; each connection is handled on its own
// goroutine that ends when ctx ends or the connection finishes.
func (p *Proxy) acceptLoop(ctx context.Context, l net.Listener, handle func(context.Context, net.Conn)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept %s: %w", l.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			handle(ctx, c)
		}()
	}
}
