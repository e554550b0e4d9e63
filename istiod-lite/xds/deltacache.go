package xds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// revisionKey is the entry a deltaCache adds to the version map it hands the server
// for a subscription (cachev3.DeltaResponse's returned resources, which the server keeps
// per stream and passes back on the stream's next watch). Its value, "<cache id>:<rev>",
// says the map holds exactly what the client was sent up to that cache revision, so the
// next response is computed from the changes since then instead of by comparing every
// resource. The key is never a resource name (names have no NUL) and never reaches the
// client.
const revisionKey = "\x00ambit-revision"

// ErrSotwUnsupported is returned for state-of-the-world requests: WDS is delta only, as
// Istio's ztunnel speaks it.
var ErrSotwUnsupported = errors.New("wds is served over delta xds only")

// deltaCache is a go-control-plane cache (cachev3.Cache) of one resource type for
// delta xDS subscribers, built so that a change costs O(changed resources) per
// subscriber rather than O(all resources) (F-CP-4: 10,000 pods, 100 ztunnels).
// go-control-plane's LinearCache compares every resource against every subscriber's
// known versions on each change and on each ACK, ~100 ms per push at that size.
//
// Versions are go-control-plane's content hashes (cachev3.HashResource of the
// deterministic marshalling), so a reconnecting client that reports what it holds
// (initial_resource_versions) is sent only what differs, even by a restarted istiod-lite
// (F-CP-2), and versions match what LinearCache computed.
type deltaCache struct {
	typeURL string
	id      string // distinguishes this cache's revision marks from any other's

	mu        sync.Mutex
	rev       uint64
	resources map[string]*discoveryv3.Resource // name -> marshalled resource with version
	log       []change                         // changes in revision order, oldest dropped
	floor     uint64                           // changes at or below floor are no longer logged
	watches   map[uint64]*deltaWatch
	nextWatch uint64
}

// change is one upserted or removed resource name at a revision.
type change struct {
	rev  uint64
	name string
}

// deltaWatch is one open watch: a stream waiting for the next change.
type deltaWatch struct {
	req *discoveryv3.DeltaDiscoveryRequest
	sub cachev3.Subscription
	out chan cachev3.DeltaResponse
}

// maxLog bounds the change log: older changes are dropped (subscribers behind that point
// get one full comparison).
const maxLog = 1 << 16

func newDeltaCache(typeURL string) *deltaCache {
	id := make([]byte, 8)
	rand.Read(id)
	return &deltaCache{
		typeURL:   typeURL,
		id:        hex.EncodeToString(id),
		resources: map[string]*discoveryv3.Resource{},
		watches:   map[uint64]*deltaWatch{},
	}
}

// UpdateResources upserts and removes resources (removing an unknown name is a no-op)
// and answers every open watch that has something new. It fails, changing nothing, if
// a resource does not marshal.
func (c *deltaCache) UpdateResources(upserts map[string]types.Resource, removed []string) error {
	marshalled := make(map[string]*discoveryv3.Resource, len(upserts))
	for name, r := range upserts {
		b, err := cachev3.MarshalResource(r)
		if err != nil {
			return fmt.Errorf("marshal %s: %w", name, err)
		}
		marshalled[name] = &discoveryv3.Resource{
			Name: name, Version: cachev3.HashResource(b),
			Resource: &anypb.Any{TypeUrl: c.typeURL, Value: b},
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev++
	for name, r := range marshalled {
		c.resources[name] = r
		c.log = append(c.log, change{c.rev, name})
	}
	for _, name := range removed {
		if _, ok := c.resources[name]; ok {
			delete(c.resources, name)
			c.log = append(c.log, change{c.rev, name})
		}
	}
	if len(c.log) > maxLog {
		cut := len(c.log) - maxLog/2
		c.floor = c.log[cut-1].rev
		c.log = slices.Clone(c.log[cut:])
	}
	for id, w := range c.watches {
		if c.respond(w, false) {
			delete(c.watches, id)
		}
	}
	return nil
}

// CreateDeltaWatch implements cachev3.Cache: it answers at once when the subscriber
// lacks something (or on a wildcard stream's first request, which Envoy and ztunnel
// expect an answer to), else keeps the watch until a change.
func (c *deltaCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, out chan cachev3.DeltaResponse) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	w := &deltaWatch{req: req, sub: sub, out: out}
	first := sub.IsWildcard() && req.GetResponseNonce() == ""
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.respond(w, first) {
		return nil, nil
	}
	c.nextWatch++
	id := c.nextWatch
	c.watches[id] = w
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watches, id)
	}, nil
}

// respond sends w what its subscriber lacks, if anything (or an empty response when
// always), and reports whether it sent. It runs under c.mu. The subscription's version
// map is updated in place and handed back as the response's returned resources: the
// map belongs to the watch's stream, whose server goroutine touches it only between
// cancelling a watch (which takes c.mu) and creating the next one.
func (c *deltaCache) respond(w *deltaWatch, always bool) bool {
	known := w.sub.ReturnedResources()
	since, marked := c.markedRevision(known, w.req)
	if !marked {
		// A map this cache did not produce (a new stream's initial_resource_versions,
		// which is the request's own field) is copied before it is marked and updated.
		known = maps.Clone(known)
		if known == nil {
			known = map[string]string{}
		}
	}
	var upserts []*discoveryv3.Resource
	var removed []string
	switch {
	case !w.sub.IsWildcard():
		upserts, removed = c.diffNamed(w.sub, known)
	case marked:
		upserts, removed = c.diffSince(since, known)
	default:
		upserts, removed = c.diffAll(known)
	}
	if len(upserts) == 0 && len(removed) == 0 && !always {
		if marked {
			c.mark(known) // the subscriber is up to date with this revision
		}
		return false
	}
	for _, r := range upserts {
		known[r.Name] = r.Version
	}
	for _, name := range removed {
		delete(known, name)
	}
	c.mark(known)
	w.out <- &cachev3.DeltaPassthroughResponse{
		DeltaRequest: w.req,
		DeltaDiscoveryResponse: &discoveryv3.DeltaDiscoveryResponse{
			TypeUrl: c.typeURL, SystemVersionInfo: strconv.FormatUint(c.rev, 10),
			Resources: upserts, RemovedResources: removed,
		},
		NextVersionMap: known,
	}
	return true
}

func (c *deltaCache) mark(known map[string]string) {
	known[revisionKey] = c.id + ":" + strconv.FormatUint(c.rev, 10)
}

// markedRevision returns the revision known was marked at by this cache, when the
// changes since then are still logged and the request changed no subscription (an
// explicit unsubscribe edits the map behind the cache's back).
func (c *deltaCache) markedRevision(known map[string]string, req *discoveryv3.DeltaDiscoveryRequest) (uint64, bool) {
	if len(req.GetResourceNamesUnsubscribe()) > 0 {
		return 0, false
	}
	id, rev, ok := strings.Cut(known[revisionKey], ":")
	if !ok || id != c.id {
		return 0, false
	}
	r, err := strconv.ParseUint(rev, 10, 64)
	if err != nil || r < c.floor || r > c.rev {
		return 0, false
	}
	return r, true
}

// diffSince compares only the resources changed after revision since.
func (c *deltaCache) diffSince(since uint64, known map[string]string) (upserts []*discoveryv3.Resource, removed []string) {
	i := sort.Search(len(c.log), func(i int) bool { return c.log[i].rev > since })
	seen := map[string]bool{}
	for _, ch := range c.log[i:] {
		if seen[ch.name] {
			continue
		}
		seen[ch.name] = true
		upserts, removed = c.compare(ch.name, known, upserts, removed)
	}
	sortResources(upserts)
	slices.Sort(removed)
	return upserts, removed
}

// diffAll compares every resource: a new stream, or one too far behind.
func (c *deltaCache) diffAll(known map[string]string) (upserts []*discoveryv3.Resource, removed []string) {
	for name, r := range c.resources {
		if v, ok := known[name]; !ok || v != r.Version {
			upserts = append(upserts, r)
		}
	}
	for name := range known {
		if _, ok := c.resources[name]; !ok && name != revisionKey {
			removed = append(removed, name)
		}
	}
	sortResources(upserts)
	slices.Sort(removed)
	return upserts, removed
}

// diffNamed compares the explicitly subscribed names of a non-wildcard subscription.
func (c *deltaCache) diffNamed(sub cachev3.Subscription, known map[string]string) (upserts []*discoveryv3.Resource, removed []string) {
	for name := range sub.SubscribedResources() {
		upserts, removed = c.compare(name, known, upserts, removed)
	}
	sortResources(upserts)
	slices.Sort(removed)
	return upserts, removed
}

// compare appends name to upserts when the subscriber lacks its current version, or to
// removed when it holds a resource that no longer exists.
func (c *deltaCache) compare(name string, known map[string]string, upserts []*discoveryv3.Resource, removed []string) ([]*discoveryv3.Resource, []string) {
	v, held := known[name]
	r, exists := c.resources[name]
	switch {
	case exists && (!held || v != r.Version):
		upserts = append(upserts, r)
	case !exists && held:
		removed = append(removed, name)
	}
	return upserts, removed
}

func sortResources(rs []*discoveryv3.Resource) {
	slices.SortFunc(rs, func(a, b *discoveryv3.Resource) int { return strings.Compare(a.Name, b.Name) })
}

// CreateWatch implements cachev3.Cache for state-of-the-world requests, which WDS does
// not serve.
func (c *deltaCache) CreateWatch(*cachev3.Request, cachev3.Subscription, chan cachev3.Response) (func(), error) {
	return nil, ErrSotwUnsupported
}

// Fetch implements cachev3.Cache (REST xDS), which WDS does not serve.
func (c *deltaCache) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, ErrSotwUnsupported
}

// numWatches returns the open watches (tests).
func (c *deltaCache) numWatches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watches)
}
