package delta

import (
	"log/slog"
	"maps"
	"slices"
	"testing"
)

// TestSubscribe: a wildcard type is requested once with its held versions; a by-name
// type only once it has names, then by differences, forgetting what it drops.
func TestSubscribe(t *testing.T) {
	want := []string(nil)
	var forgot []string
	c := New(Config{
		Node: &Node{Id: "n"}, TypeURLs: []string{typeA, typeB}, Handler: &recorder{}, Logger: slog.New(slog.DiscardHandler),
		Names: func(tu string) ([]string, bool) { return want, tu == typeB },
		Forget: func(tu string, names []string) {
			if tu != typeB {
				t.Errorf("forget of %s", tu)
			}
			forgot = append(forgot, names...)
		},
	})
	c.versions[typeA]["a"] = "1"
	c.versions[typeB]["r1"] = "v1"
	c.versions[typeB]["old"] = "v0"
	s := newSubscription()
	reqs := c.subscribe(s)
	if len(reqs) != 1 || reqs[0].GetTypeUrl() != typeA || !slices.Equal(reqs[0].GetResourceNamesSubscribe(), []string{"*"}) ||
		reqs[0].GetInitialResourceVersions()["a"] != "1" || reqs[0].GetNode().GetId() != "n" {
		t.Fatalf("first requests = %v, want only typeA's wildcard with node and versions (an empty by-name request would mean wildcard)", reqs)
	}
	tests := []struct {
		name      string
		want      []string
		sub, drop []string
		versions  map[string]string // first request only
	}{
		{name: "first names", want: []string{"r1", "r2", "r1"}, sub: []string{"r1", "r2"}, versions: map[string]string{"r1": "v1"}},
		{name: "unchanged", want: []string{"r2", "r1"}},
		{name: "swap", want: []string{"r2", "r3"}, sub: []string{"r3"}, drop: []string{"r1"}},
		{name: "all gone", want: nil, drop: []string{"r2", "r3"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, forgot = tc.want, nil
			reqs := c.subscribe(s)
			if tc.sub == nil && tc.drop == nil {
				if len(reqs) != 0 {
					t.Fatalf("requests = %v, want none", reqs)
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("requests = %v, want one", reqs)
			}
			r := reqs[0]
			if r.GetTypeUrl() != typeB || !slices.Equal(r.GetResourceNamesSubscribe(), tc.sub) || !slices.Equal(r.GetResourceNamesUnsubscribe(), tc.drop) {
				t.Fatalf("request = %v, want +%v -%v", r, tc.sub, tc.drop)
			}
			if (r.GetNode() != nil) != (i == 0) || !maps.Equal(r.GetInitialResourceVersions(), tc.versions) {
				t.Errorf("request = %v: node only on the first, initial versions %v", r, tc.versions)
			}
			if !slices.Equal(forgot, tc.drop) {
				t.Errorf("forgotten %v, want %v", forgot, tc.drop)
			}
			for _, n := range tc.drop {
				if _, held := c.versions[typeB][n]; held {
					t.Errorf("version of unsubscribed %q kept", n)
				}
			}
		})
	}
}
