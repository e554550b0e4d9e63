package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ambitmesh/ambit/ztunnel/rbac"
	"github.com/ambitmesh/ambit/ztunnel/state"
)

// errNoWorkload: the pod's own workload is not in WDS, so the policies that select it are
// unknown. The connection is refused (503 on HBONE, closed when plaintext), as Istio's
// ztunnel does when it cannot find the local workload.
var errNoWorkload = errors.New("destination workload not in workload discovery")

// liveConn is an open inbound connection as authorization sees it; it is re-decided on
// every policy change while it is tracked.
type liveConn struct {
	conn   rbac.Connection
	dst    atomic.Pointer[rbac.Destination] // captured at admission, refreshed from WDS
	reset  func()                           // aborts the connection: TCP RST, or HBONE stream reset
	denied atomic.Bool                      // closed by a policy change
}

func newLiveConn(c rbac.Connection, dst rbac.Destination, reset func()) *liveConn {
	lc := &liveConn{conn: c, reset: reset}
	lc.dst.Store(&dst)
	return lc
}

// liveConns is the set of a pod's open inbound connections.
type liveConns struct {
	mu sync.Mutex
	m  map[*liveConn]struct{}
}

func (l *liveConns) add(lc *liveConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[*liveConn]struct{}{}
	}
	l.m[lc] = struct{}{}
}

func (l *liveConns) remove(lc *liveConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, lc)
}

func (l *liveConns) list() []*liveConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*liveConn, 0, len(l.m))
	for lc := range l.m {
		out = append(out, lc)
	}
	return out
}

func destinationOf(w *state.Workload) rbac.Destination {
	return rbac.Destination{Namespace: w.Namespace, Name: w.Name, Policies: w.AuthorizationPolicies}
}

// authorize decides an inbound connection to this pod with the current policies (F-SEC-3).
// gen is the policy generation the decision was made at (see track).
func (p *Proxy) authorize(c rbac.Connection) (d rbac.Decision, dst rbac.Destination, gen uint64, err error) {
	gen = p.cfg.Store.PolicyGeneration() // before the state it versions
	w := p.cfg.Store.WorkloadByIP(p.pod.IP)
	if w == nil {
		return rbac.Decision{}, rbac.Destination{}, gen, errNoWorkload
	}
	dst = destinationOf(w)
	return p.cfg.Store.Policies().Evaluate(dst, c), dst, gen, nil
}

// recheck re-decides an open connection with the current policies and, when WDS still
// has it, the pod's current workload.
func (p *Proxy) recheck(lc *liveConn) rbac.Decision {
	if w := p.cfg.Store.WorkloadByIP(p.pod.IP); w != nil {
		dst := destinationOf(w)
		lc.dst.Store(&dst)
	}
	return p.cfg.Store.Policies().Evaluate(*lc.dst.Load(), lc.conn)
}

// track registers an admitted connection for re-evaluation. A policy change between the
// decision (at generation gen) and the registration would be missed by enforcePolicies,
// so the connection is then re-decided; when the result is a deny, lc is left untracked.
func (p *Proxy) track(lc *liveConn, gen uint64) rbac.Decision {
	p.live.add(lc)
	if p.cfg.Store.PolicyGeneration() == gen {
		return rbac.Decision{Allow: true}
	}
	d := p.recheck(lc)
	if !d.Allow {
		p.live.remove(lc)
	}
	return d
}

// enforcePolicies re-decides every open inbound connection after each policy change and
// closes those now denied (F-SEC-5: a DENY added while a connection is open closes it),
// until ctx ends.
func (p *Proxy) enforcePolicies(ctx context.Context) {
	for {
		changed := p.cfg.Store.PolicyChanged()
		for _, lc := range p.live.list() {
			if d := p.recheck(lc); !d.Allow && lc.denied.CompareAndSwap(false, true) {
				p.log.Info("open connection closed by policy", "src", lc.conn.SrcIP, "dst_port", lc.conn.DstPort,
					"src_identity", identityString(lc.conn.SrcIdentity), "policy", d.Policy, "reason", d.Reason)
				lc.reset()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// resetConn closes c with a TCP RST when it is a TCP connection (SO_LINGER 0), as
// Istio's ztunnel aborts a denied plaintext connection.
func resetConn(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}
