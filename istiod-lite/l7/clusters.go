package l7

import (
	"slices"
	"strings"
)

// clusters are the clusters of w: every backend a route forwards or mirrors to, and the
// default backend of every served port, sorted by name.
func (ix *index) clusters(w *Waypoint) []Cluster {
	set := map[string]Backend{}
	add := func(b Backend) { set[b.Name()] = b }
	for _, s := range w.Services {
		for _, p := range s.Ports {
			add(Backend{Hostname: s.Hostname, Port: p.Number})
			for _, r := range p.Routes {
				for _, wb := range r.Backends {
					add(wb.Backend)
				}
				for _, m := range r.Mirrors {
					add(m.Backend)
				}
			}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.SortFunc(names, strings.Compare)
	out := make([]Cluster, 0, len(names))
	for _, n := range names {
		out = append(out, ix.cluster(set[n]))
	}
	return out
}

// cluster describes backend b: the upstream protocol of its service port, its ready
// endpoints (narrowed by the subset's labels) and the DestinationRule's policy for it.
func (ix *index) cluster(b Backend) Cluster {
	c := Cluster{Backend: b, Protocol: ProtocolHTTP}
	svc := ix.byHost[b.Hostname]
	if svc == nil {
		return c
	}
	if sp, ok := servicePort(svc, b.Port); ok && portProtocol(sp) == ProtocolHTTP2 {
		c.Protocol = ProtocolHTTP2
	}
	dr := ix.drs[b.Hostname]
	var subset map[string]string
	if b.Subset != "" {
		s := dr.subset(b.Subset)
		if s == nil {
			return c // not reached: routes only name defined subsets
		}
		subset = s.GetLabels()
		if subset == nil {
			subset = map[string]string{}
		}
	}
	c.Endpoints = ix.endpoints(svc, b.Port, subset)
	c.LB, c.Limits, c.Outlier = dr.policy(b.Subset)
	return c
}
