package caclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// Retry and rotation tuning of Manager.
const (
	// RetryInitial is the first delay after a failed fetch; it doubles per failure.
	RetryInitial = time.Second
	// RetryMax caps the delay between retries.
	RetryMax = 2 * time.Minute
	// minRotateInterval keeps a CA that returns already-half-expired certificates
	// from being asked in a tight loop.
	minRotateInterval = 10 * time.Second
	// rotateTimeout bounds one background rotation request.
	rotateTimeout = 30 * time.Second
	// maxConcurrentRotations bounds background requests in flight at once.
	maxConcurrentRotations = 4
)

// Fetcher obtains a fresh certificate for an identity; *Client is one.
type Fetcher interface {
	Fetch(ctx context.Context, id spiffe.Identity, impersonate bool) (*Certificate, error)
}

// Manager caches one certificate per identity and renews it at half of its lifetime
// (Istio ztunnel's rotation point). Certificate blocks only while no valid certificate
// is cached; concurrent callers share one fetch. Run performs rotation and retries
// failed fetches with exponential backoff (RetryInitial doubling to RetryMax). It is
// safe for concurrent use.
type Manager struct {
	fetcher     Fetcher
	impersonate bool
	clock       Clock
	wake        chan struct{} // buffered(1): tells Run to recompute its schedule

	mu      sync.Mutex
	entries map[spiffe.Identity]*entry
	roots   map[string]*x509.Certificate // by DER
}

type entry struct {
	id        spiffe.Identity
	cert      *Certificate // nil until the first successful fetch
	call      *call        // in-flight fetch, nil when none
	fetchedAt time.Time
	failures  int // consecutive failed fetches
	retryAt   time.Time
}

// call is one fetch that several callers may wait on.
type call struct {
	done chan struct{} // closed when cert/err are set
	cert *Certificate
	err  error
}

// NewManager builds a Manager fetching through f; impersonate is passed to every Fetch
// (true for a node proxy fetching pods' identities). A nil clock means RealClock().
func NewManager(f Fetcher, impersonate bool, clock Clock) *Manager {
	if clock == nil {
		clock = RealClock()
	}
	return &Manager{
		fetcher: f, impersonate: impersonate, clock: clock,
		wake:    make(chan struct{}, 1),
		entries: map[spiffe.Identity]*entry{},
		roots:   map[string]*x509.Certificate{},
	}
}

// Certificate returns a valid certificate for id: the cached one while it has not
// expired (even if due for rotation, which Run handles), otherwise the result of a
// fetch, shared with concurrent callers. It returns early with ctx's error when ctx
// ends. A fetch error is returned as is and retried by Run with backoff.
func (m *Manager) Certificate(ctx context.Context, id spiffe.Identity) (*Certificate, error) {
	for {
		m.mu.Lock()
		e := m.entries[id]
		if e == nil {
			e = &entry{id: id}
			m.entries[id] = e
		}
		if e.cert != nil && m.clock.Now().Before(e.cert.NotAfter) {
			c := e.cert
			m.mu.Unlock()
			return c, nil
		}
		cl, owner := e.call, false
		if cl == nil {
			cl, owner = &call{done: make(chan struct{})}, true
			e.call = cl
		}
		m.mu.Unlock()

		if owner {
			m.fetch(ctx, e, cl)
			return cl.cert, cl.err
		}
		select {
		case <-cl.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("certificate for %s: %w", id, ctx.Err())
		}
		if cl.err == nil {
			return cl.cert, nil
		}
		// The shared fetch died with its owner's context; ours is alive: try again.
		if isContextErr(cl.err) && ctx.Err() == nil {
			continue
		}
		return nil, cl.err
	}
}

// fetch runs one fetch for e, publishes its result on cl and records it on e unless e
// was forgotten meanwhile.
func (m *Manager) fetch(ctx context.Context, e *entry, cl *call) {
	cert, err := m.fetcher.Fetch(ctx, e.id, m.impersonate)
	if err == nil && cert == nil {
		err = fmt.Errorf("fetcher returned no certificate")
	}
	if err != nil {
		err = fmt.Errorf("certificate for %s: %w", e.id, err)
	}
	m.mu.Lock()
	cl.cert, cl.err = cert, err
	e.call = nil
	if m.entries[e.id] == e {
		now := m.clock.Now()
		if err == nil {
			e.cert, e.fetchedAt, e.failures = cert, now, 0
			m.roots[string(cert.Root().Raw)] = cert.Root()
		} else {
			e.failures++
			e.retryAt = now.Add(backoff(e.failures))
		}
	}
	m.mu.Unlock()
	close(cl.done)
	m.poke()
}

func backoff(failures int) time.Duration {
	d := RetryInitial
	for i := 1; i < failures && d < RetryMax; i++ {
		d *= 2
	}
	return min(d, RetryMax)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Forget drops id's certificate; a fetch in flight for it completes but is not cached.
func (m *Manager) Forget(id spiffe.Identity) {
	m.mu.Lock()
	delete(m.entries, id)
	m.mu.Unlock()
	m.poke()
}

// Run rotates certificates when due and retries failed fetches, until ctx ends; it then
// waits for its own requests to finish and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxConcurrentRotations)
	for {
		due, next := m.due()
		for _, d := range due {
			wg.Go(func() {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done(): // fetch below fails fast and records the failure
				}
				fctx, cancel := context.WithTimeout(ctx, rotateTimeout)
				defer cancel()
				m.fetch(fctx, d.e, d.cl)
			})
		}
		var timeout <-chan time.Time
		var timer Timer
		if !next.IsZero() {
			timer = m.clock.NewTimer(next.Sub(m.clock.Now()))
			timeout = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-timeout:
		case <-m.wake:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

type dueFetch struct {
	e  *entry
	cl *call
}

// due marks and returns the entries whose rotation or retry time has come, and returns
// the earliest future due time (zero when nothing is scheduled).
func (m *Manager) due() ([]dueFetch, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var out []dueFetch
	var next time.Time
	for _, e := range m.entries {
		if e.call != nil {
			continue
		}
		var at time.Time
		switch {
		case e.failures > 0:
			at = e.retryAt
		case e.cert != nil:
			at = e.cert.RotateAt()
			if floor := e.fetchedAt.Add(minRotateInterval); at.Before(floor) {
				at = floor
			}
		default:
			continue
		}
		if !now.Before(at) {
			e.call = &call{done: make(chan struct{})}
			out = append(out, dueFetch{e, e.call})
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return out, next
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Snapshot returns the cached certificates sorted by identity, for config dumps.
func (m *Manager) Snapshot() []*Certificate {
	m.mu.Lock()
	out := make([]*Certificate, 0, len(m.entries))
	for _, e := range m.entries {
		if e.cert != nil {
			out = append(out, e.cert)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Identity.String() < out[j].Identity.String() })
	return out
}

// Roots returns a new pool with every root seen in a fetched chain (the union, so peers
// keep verifying across a root rotation).
func (m *Manager) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	m.mu.Lock()
	for _, r := range m.roots {
		p.AddCert(r)
	}
	m.mu.Unlock()
	return p
}
