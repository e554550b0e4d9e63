package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"istio.io/istio/pkg/workloadapi"

	"github.com/ambitmesh/ambit/istiod-lite/xds"
	"github.com/ambitmesh/ambit/pkg/xdsclient"
)

// tracker records, per change, when it was written and when each client got it.
type tracker struct {
	clients int
	mu      sync.Mutex
	changes map[int]*changeRecord
}

// changeRecord is one change's write time and deliveries.
type changeRecord struct {
	written   time.Time
	delivered int       // clients that hold it
	first     time.Time // first client to get it
	last      time.Time // last client to get it (valid once delivered == clients)
	done      chan struct{}
}

func newTracker(clients int) *tracker {
	return &tracker{clients: clients, changes: map[int]*changeRecord{}}
}

// expect registers change k as written at t; it returns a channel closed when every
// client holds it.
func (t *tracker) expect(k int, at time.Time) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.record(k)
	r.written = at
	return r.done
}

func (t *tracker) record(k int) *changeRecord {
	r := t.changes[k]
	if r == nil {
		r = &changeRecord{done: make(chan struct{})}
		t.changes[k] = r
	}
	return r
}

// delivered notes that one client received change k at time at.
func (t *tracker) delivered(k int, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.record(k)
	r.delivered++
	if r.delivered == 1 {
		r.first = at
	}
	if r.delivered == t.clients {
		r.last = at
		close(r.done)
	}
}

// latencies returns, for the changes in [from, to), the event-to-last-client and
// event-to-first-client durations of those every client got, and how many did not
// reach every client.
func (t *tracker) latencies(from, to int) (last, first []time.Duration, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := from; k < to; k++ {
		r := t.changes[k]
		if r == nil || r.written.IsZero() || r.delivered < t.clients {
			missing++
			continue
		}
		last = append(last, r.last.Sub(r.written))
		first = append(first, r.first.Sub(r.written))
	}
	return last, first, missing
}

// writeCSV saves the timeline of changes [from, to) to path: per change, its write time
// (ms since the first) and the event-to-first and event-to-last client times (ms; empty
// when it did not reach every client).
func (t *tracker) writeCSV(path string, from, to int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	b.WriteString("change,written_ms,first_ms,last_ms\n")
	var start time.Time
	for k := from; k < to; k++ {
		r := t.changes[k]
		if r == nil || r.written.IsZero() {
			continue
		}
		if start.IsZero() {
			start = r.written
		}
		fmt.Fprintf(&b, "%d,%.3f,", k, ms(r.written.Sub(start)))
		if r.delivered == t.clients {
			fmt.Fprintf(&b, "%.3f,%.3f", ms(r.first.Sub(r.written)), ms(r.last.Sub(r.written)))
		} else {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write churn timeline: %w", err)
	}
	return nil
}

// client is one simulated ztunnel: a delta xDS client subscribed to WDS that counts
// what it receives and reports changed workloads to the tracker.
type client struct {
	tracker   *tracker
	resources atomic.Int64 // resources received (upserts and removals)
	bytes     atomic.Int64 // marshalled size of the resources received
	responses atomic.Int64
	held      atomic.Int64 // Address resources held
	names     map[string]bool
	synced    chan struct{}
	syncOnce  sync.Once
	want      int // Address resources that mean "synced"
}

// Apply implements xdsclient.Handler: it decodes every Address and reports the
// revision of each workload whose pod carries a churned revision label.
func (c *client) Apply(typeURL string, upserts []*discoveryv3.Resource, removed []string) error {
	now := time.Now()
	c.responses.Add(1)
	c.resources.Add(int64(len(upserts) + len(removed)))
	if typeURL != xds.TypeAddress {
		return nil
	}
	for _, r := range upserts {
		c.bytes.Add(int64(proto.Size(r)))
		c.names[r.GetName()] = true
		var a workloadapi.Address
		if err := r.GetResource().UnmarshalTo(&a); err != nil {
			return fmt.Errorf("decode address %s: %w", r.GetName(), err)
		}
		if rev := a.GetWorkload().GetCanonicalRevision(); strings.HasPrefix(rev, "c") && rev != revision(0) {
			if k, err := strconv.Atoi(rev[1:]); err == nil {
				c.tracker.delivered(k, now)
			}
		}
	}
	for _, name := range removed {
		delete(c.names, name)
	}
	c.held.Store(int64(len(c.names)))
	if len(c.names) >= c.want {
		c.syncOnce.Do(func() { close(c.synced) })
	}
	return nil
}

// fleet is the set of simulated ztunnels.
type fleet struct {
	clients []*client
	conns   []*grpc.ClientConn
}

// startFleet dials n clients to the plaintext xDS address and runs them in g until ctx
// ends. Each client is synced once it holds want Address resources.
func startFleet(ctx context.Context, g *errgroup.Group, addr string, n, want int, tr *tracker) (*fleet, error) {
	f := &fleet{}
	for i := range n {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
		if err != nil {
			f.close()
			return nil, fmt.Errorf("dial xds: %w", err)
		}
		c := &client{tracker: tr, names: map[string]bool{}, synced: make(chan struct{}), want: want}
		xc := xdsclient.New(xdsclient.Config{
			Conn:     conn,
			Node:     &corev3.Node{Id: fmt.Sprintf("ztunnel~node-%d", i), Cluster: "Kubernetes"},
			TypeURLs: []string{xds.TypeAddress, xds.TypeAuthorization},
			Handler:  c,
			Backoff:  50 * time.Millisecond,
			Logger:   slog.New(slog.DiscardHandler),
		})
		f.clients = append(f.clients, c)
		f.conns = append(f.conns, conn)
		g.Go(func() error {
			err := xc.Run(ctx)
			if ctx.Err() != nil {
				return nil
			}
			return err
		})
	}
	return f, nil
}

// waitSynced waits until every client holds its full Address set.
func (f *fleet) waitSynced(ctx context.Context) error {
	for i, c := range f.clients {
		select {
		case <-c.synced:
		case <-ctx.Done():
			return fmt.Errorf("client %d holds %d of %d addresses: %w", i, c.held.Load(), c.want, ctx.Err())
		}
	}
	return nil
}

// totals sums the clients' counters.
func (f *fleet) totals() (resources, bytes int64) {
	for _, c := range f.clients {
		resources += c.resources.Load()
		bytes += c.bytes.Load()
	}
	return resources, bytes
}

func (f *fleet) close() {
	for _, c := range f.conns {
		c.Close()
	}
}
