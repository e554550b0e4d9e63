package delta

import (
	"maps"
	"slices"
)

// subscription is what one stream has requested so far: the types whose first request
// was sent, and the names of each by-name type.
type subscription struct {
	started map[string]bool
	names   map[string]map[string]bool
}

func newSubscription() *subscription {
	return &subscription{started: map[string]bool{}, names: map[string]map[string]bool{}}
}

// want reports how t is to be subscribed now (Config.Names; wildcard without it).
func (c *Client) want(t string) (names []string, byName bool) {
	if c.cfg.Names == nil {
		return nil, false
	}
	return c.cfg.Names(t)
}

// subscribe returns the requests that bring the stream's subscriptions up to date, in
// TypeURLs order: the first request of each type not yet started, and a
// subscribe/unsubscribe change for each by-name type whose names changed. Names
// unsubscribed lose their versions and are passed to Config.Forget.
func (c *Client) subscribe(s *subscription) []*Request {
	var reqs []*Request
	for _, t := range c.cfg.TypeURLs {
		names, byName := c.want(t)
		var req *Request
		switch {
		case !s.started[t] && !byName:
			req = &Request{Node: c.cfg.Node, TypeUrl: t, ResourceNamesSubscribe: []string{"*"},
				InitialResourceVersions: cloneVersions(c.versions[t])}
		case !s.started[t] && len(names) > 0:
			req = c.firstByName(s, t, names)
		case s.started[t] && byName:
			req = c.changeByName(s, t, names)
		}
		if req == nil {
			continue
		}
		s.started[t] = true
		reqs = append(reqs, req)
	}
	return reqs
}

// firstByName is a by-name type's first request on a stream: its names, with the
// versions held of those names.
func (c *Client) firstByName(s *subscription, t string, names []string) *Request {
	set := map[string]bool{}
	req := &Request{Node: c.cfg.Node, TypeUrl: t}
	for _, n := range names {
		if !set[n] {
			set[n] = true
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
		}
	}
	for n, v := range c.versions[t] {
		if set[n] {
			if req.InitialResourceVersions == nil {
				req.InitialResourceVersions = map[string]string{}
			}
			req.InitialResourceVersions[n] = v
		}
	}
	s.names[t] = set
	return req
}

// changeByName is the request moving a started by-name type from its subscribed names
// to names (new ones subscribed in the given order, dropped ones unsubscribed in name
// order), or nil when they are the same.
func (c *Client) changeByName(s *subscription, t string, names []string) *Request {
	cur := s.names[t]
	set := map[string]bool{}
	req := &Request{TypeUrl: t}
	for _, n := range names {
		if !set[n] {
			set[n] = true
			if !cur[n] {
				req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(cur)) {
		if !set[n] {
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
		}
	}
	if len(req.ResourceNamesSubscribe) == 0 && len(req.ResourceNamesUnsubscribe) == 0 {
		return nil
	}
	s.names[t] = set
	if gone := req.ResourceNamesUnsubscribe; len(gone) > 0 {
		for _, n := range gone {
			delete(c.versions[t], n)
		}
		if c.cfg.Forget != nil {
			c.cfg.Forget(t, slices.Clone(gone))
		}
	}
	return req
}
