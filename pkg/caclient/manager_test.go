package caclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ambitmesh/ambit/pkg/ca"
	"github.com/ambitmesh/ambit/pkg/spiffe"
)

// fakeFetcher signs with a real in-process authority (no network, so it runs inside a
// synctest bubble where time is fake), records when it was called and can fail or block.
type fakeFetcher struct {
	a   *ca.Authority
	ttl time.Duration

	mu       sync.Mutex
	calls    []time.Time
	failNext int
	gate     chan struct{} // when set, Fetch waits for it to close (or ctx)
}

func newFakeFetcher(t *testing.T, ttl time.Duration) *fakeFetcher {
	t.Helper()
	certPEM, keyPEM, err := ca.GenerateRoot("cluster.local", time.Now(), 24*time.Hour*365)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(certPEM, keyPEM, nil, certPEM, "")
	if err != nil {
		t.Fatal(err)
	}
	return &fakeFetcher{a: a, ttl: ttl}
}

func (f *fakeFetcher) Fetch(ctx context.Context, id spiffe.Identity, _ bool) (*Certificate, error) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	fail := f.failNext > 0
	if fail {
		f.failNext--
	}
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail {
		return nil, errors.New("ca unavailable")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := makeCSR(key, id)
	if err != nil {
		return nil, err
	}
	chain, err := f.a.Sign(csr, id, f.ttl)
	if err != nil {
		return nil, err
	}
	return newCertificate(chain, key, id, time.Now())
}

func (f *fakeFetcher) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// runManager starts m.Run and returns a func that stops it and checks its result.
func runManager(t *testing.T, m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
}

func TestManagerSharesFirstFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeFetcher(t, time.Hour)
		f.gate = make(chan struct{})
		m := NewManager(f, true, nil)
		const n = 5
		results := make(chan *Certificate, n)
		for range n {
			go func() {
				c, err := m.Certificate(t.Context(), idClient)
				if err != nil {
					t.Error(err)
				}
				results <- c
			}()
		}
		synctest.Wait() // every caller is blocked on the one fetch
		if got := len(f.callTimes()); got != 1 {
			t.Fatalf("%d fetches for %d concurrent callers, want 1", got, n)
		}
		close(f.gate)
		first := <-results
		for range n - 1 {
			if c := <-results; c != first {
				t.Error("callers got different certificates")
			}
		}
		if first == nil || first.Identity != idClient {
			t.Fatalf("certificate = %+v", first)
		}
	})
}

func TestManagerRotatesAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeFetcher(t, time.Hour)
		m := NewManager(f, false, nil)
		t0 := time.Now()
		c1, err := m.Certificate(t.Context(), idClient)
		if err != nil {
			t.Fatal(err)
		}
		stop := runManager(t, m)
		defer stop()
		// Lifetime is [t0-1m, t0+1h]; half-way is t0+29m30s.
		rotateAt := t0.Add(29*time.Minute + 30*time.Second)
		if !c1.RotateAt().Equal(rotateAt) {
			t.Fatalf("RotateAt = %v, want %v", c1.RotateAt().Sub(t0), rotateAt.Sub(t0))
		}
		time.Sleep(rotateAt.Sub(t0) - time.Second)
		synctest.Wait()
		if got := len(f.callTimes()); got != 1 {
			t.Fatalf("%d fetches before half life, want 1", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		calls := f.callTimes()
		if len(calls) != 2 || !calls[1].Equal(rotateAt) {
			t.Fatalf("fetches at %v, want a rotation at t0+%v", calls, rotateAt.Sub(t0))
		}
		c2, err := m.Certificate(t.Context(), idClient)
		if err != nil || c2 == c1 || c2.Leaf.SerialNumber.Cmp(c1.Leaf.SerialNumber) == 0 {
			t.Fatalf("after rotation got the old certificate (err %v)", err)
		}
		// The next rotation is half-way through the new certificate's life.
		time.Sleep(c2.RotateAt().Sub(time.Now()))
		synctest.Wait()
		if calls := f.callTimes(); len(calls) != 3 || !calls[2].Equal(c2.RotateAt()) {
			t.Fatalf("second rotation at %v, want %v", calls, c2.RotateAt())
		}
	})
}

func TestManagerRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeFetcher(t, time.Hour)
		f.failNext = 3
		m := NewManager(f, false, nil)
		t0 := time.Now()
		if _, err := m.Certificate(t.Context(), idClient); err == nil {
			t.Fatal("first fetch did not fail")
		}
		stop := runManager(t, m)
		defer stop()
		time.Sleep(time.Minute)
		synctest.Wait()
		calls := f.callTimes()
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second} // 1s, 2s, 4s apart
		if len(calls) != len(want) {
			t.Fatalf("%d fetches, want %d", len(calls), len(want))
		}
		for i, w := range want {
			if got := calls[i].Sub(t0); got != w {
				t.Errorf("fetch %d at t0+%v, want t0+%v", i, got, w)
			}
		}
		if len(m.Snapshot()) != 1 {
			t.Fatal("retried certificate not cached")
		}
		c, err := m.Certificate(t.Context(), idClient)
		if err != nil || len(f.callTimes()) != len(want) {
			t.Fatalf("cached certificate not served: %v", err)
		}

		// A failed rotation keeps serving the old certificate and retries.
		f.mu.Lock()
		f.failNext = 1
		f.mu.Unlock()
		time.Sleep(c.RotateAt().Sub(time.Now()))
		synctest.Wait()
		if got, _ := m.Certificate(t.Context(), idClient); got != c {
			t.Fatal("old certificate not served while rotation fails")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, _ := m.Certificate(t.Context(), idClient); got == c {
			t.Fatal("rotation not retried after 1s")
		}
	})
}

func TestManagerCallerContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeFetcher(t, time.Hour)
		f.gate = make(chan struct{})
		m := NewManager(f, false, nil)

		ownerCtx, cancelOwner := context.WithCancel(t.Context())
		ownerErr := make(chan error, 1)
		go func() { _, err := m.Certificate(ownerCtx, idClient); ownerErr <- err }()
		synctest.Wait()
		waiter := make(chan *Certificate, 1)
		go func() {
			c, err := m.Certificate(t.Context(), idClient)
			if err != nil {
				t.Error(err)
			}
			waiter <- c
		}()
		impatient, cancelImpatient := context.WithCancel(t.Context())
		impatientErr := make(chan error, 1)
		go func() { _, err := m.Certificate(impatient, idClient); impatientErr <- err }()
		synctest.Wait()

		cancelImpatient()
		if err := <-impatientErr; !errors.Is(err, context.Canceled) {
			t.Errorf("waiter with cancelled ctx: %v", err)
		}
		cancelOwner()
		if err := <-ownerErr; !errors.Is(err, context.Canceled) {
			t.Errorf("owner with cancelled ctx: %v", err)
		}
		synctest.Wait() // the remaining waiter has started its own fetch
		if got := len(f.callTimes()); got != 2 {
			t.Fatalf("%d fetches, want the waiter to refetch", got)
		}
		close(f.gate)
		if c := <-waiter; c == nil {
			t.Fatal("waiter got no certificate")
		}
	})
}

func TestManagerForgetExpiryAndRoots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeFetcher(t, time.Hour)
		m := NewManager(f, false, RealClock())
		for _, id := range []spiffe.Identity{idServer, idClient} {
			if _, err := m.Certificate(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		snap := m.Snapshot()
		if len(snap) != 2 || snap[0].Identity != idClient || snap[1].Identity != idServer {
			t.Fatalf("Snapshot = %v, want client, server", snap)
		}
		if _, err := snap[0].Leaf.Verify(x509.VerifyOptions{Roots: m.Roots()}); err != nil {
			t.Errorf("leaf does not verify with Manager.Roots: %v", err)
		}

		m.Forget(idServer)
		if len(m.Snapshot()) != 1 {
			t.Error("Forget kept the certificate")
		}

		// Without Run, an expired certificate is refetched on demand.
		time.Sleep(time.Hour + time.Second)
		before := len(f.callTimes())
		c, err := m.Certificate(t.Context(), idClient)
		if err != nil || len(f.callTimes()) != before+1 || !time.Now().Before(c.NotAfter) {
			t.Fatalf("expired certificate not refetched (err %v)", err)
		}
	})
}
