package route

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMatch(t *testing.T) {
	ci := prefix("/CaseLess")
	ci.CaseSensitive = wrapperspb.Bool(false)
	hdrMatch := prefix("/h")
	hdrMatch.Headers = []*routev3.HeaderMatcher{hdr("x-version", exact("v2"), false), hdr(":method", exact("GET"), false)}
	invert := prefix("/inv")
	invert.Headers = []*routev3.HeaderMatcher{hdr("x-env", regex("prod.*"), true)}
	present := prefix("/present")
	present.Headers = []*routev3.HeaderMatcher{{Name: "x-flag", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}
	absent := prefix("/absent")
	absent.Headers = []*routev3.HeaderMatcher{{Name: "x-flag", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}}}
	query := prefix("/q")
	query.QueryParameters = []*routev3.QueryParameterMatcher{
		{Name: "user", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("a b")}},
		{Name: "id", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: regex("[0-9]+")}},
	}
	tb := table(t,
		toCluster("exact", "c-exact", exactPath("/exact")),
		toCluster("regex", "c-regex", regexPath("/items/[0-9]+")),
		toCluster("sep", "c-sep", sepPrefix("/api")),
		toCluster("ci", "c-ci", ci),
		toCluster("hdr", "c-hdr", hdrMatch),
		toCluster("inv", "c-inv", invert),
		toCluster("present", "c-present", present),
		toCluster("absent", "c-absent", absent),
		toCluster("query", "c-query", query),
		toCluster("prefix", "c-prefix", prefix("/plain")),
	)
	tests := []struct {
		name    string
		method  string
		target  string
		headers []string
		want    string // route name, "" for no match
	}{
		{name: "exact", target: "/exact", want: "exact"},
		{name: "exact ignores query", target: "/exact?x=1", want: "exact"},
		{name: "exact is not prefix", target: "/exact/more", want: ""},
		{name: "regex whole path", target: "/items/42", want: "regex"},
		{name: "regex anchored", target: "/items/42/x", want: ""},
		{name: "regex ignores query", target: "/items/7?a=b", want: "regex"},
		{name: "separated prefix equal", target: "/api", want: "sep"},
		{name: "separated prefix slash", target: "/api/v1", want: "sep"},
		{name: "separated prefix query", target: "/api?x", want: "sep"},
		{name: "separated prefix not a segment", target: "/apix", want: ""},
		{name: "case insensitive", target: "/caseless/x", want: "ci"},
		{name: "case sensitive by default", target: "/EXACT", want: ""},
		{name: "header and method", target: "/h", headers: []string{"X-Version", "v2"}, want: "hdr"},
		{name: "header wrong value", target: "/h", headers: []string{"X-Version", "v1"}, want: ""},
		{name: "method mismatch", method: "POST", target: "/h", headers: []string{"X-Version", "v2"}, want: ""},
		{name: "inverted regex", target: "/inv", headers: []string{"X-Env", "dev"}, want: "inv"},
		{name: "inverted regex matches value", target: "/inv", headers: []string{"X-Env", "prod-1"}, want: ""},
		{name: "inverted absent header never matches", target: "/inv", want: ""},
		{name: "present", target: "/present", headers: []string{"X-Flag", ""}, want: "present"},
		{name: "present missing", target: "/present", want: ""},
		{name: "absent", target: "/absent", want: "absent"},
		{name: "absent but present", target: "/absent", headers: []string{"X-Flag", "1"}, want: ""},
		{name: "query", target: "/q?user=a%20b&id=12", want: "query"},
		{name: "query first value wins", target: "/q?id=12&user=a%20b&user=c", want: "query"},
		{name: "query regex fails", target: "/q?user=a%20b&id=x", want: ""},
		{name: "query missing", target: "/q?user=a%20b", want: ""},
		{name: "prefix", target: "/plain/anything", want: "prefix"},
		{name: "none", target: "/zzz", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			rt := tb.Match(req(method, tc.target, tc.headers...))
			got := ""
			if rt != nil {
				got = rt.Name
			}
			if got != tc.want {
				t.Fatalf("Match(%s %s) = %q, want %q", method, tc.target, got, tc.want)
			}
		})
	}
}

func TestMatchFirstWins(t *testing.T) {
	tb := table(t, toCluster("a", "ca", prefix("/")), toCluster("b", "cb", exactPath("/x")))
	if rt := tb.Match(req("GET", "/x")); rt == nil || rt.Name != "a" {
		t.Fatalf("got %v, want the first route", rt)
	}
}

func TestVirtualHostSelection(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		{Name: "any", Domains: []string{"*"}, Routes: []*routev3.Route{toCluster("any", "c", prefix("/"))}},
		{Name: "prefix", Domains: []string{"foo.*"}, Routes: []*routev3.Route{toCluster("prefix", "c", prefix("/"))}},
		{Name: "suffix", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{toCluster("suffix", "c", prefix("/"))}},
		{Name: "exact", Domains: []string{"Foo.Example.com"}, Routes: []*routev3.Route{toCluster("exact", "c", prefix("/"))}},
	}}
	tb, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"foo.example.com": "exact",
		"bar.example.com": "suffix",
		"foo.bar":         "prefix",
		"other":           "any",
	} {
		r := req("GET", "/")
		r.Host = host
		if rt := tb.Match(r); rt == nil || rt.Name != want {
			t.Errorf("host %q: got %v, want %s", host, rt, want)
		}
	}
}

func TestStringMatch(t *testing.T) {
	tests := []struct {
		name string
		sm   *matcherv3.StringMatcher
		in   string
		want bool
	}{
		{"exact", exact("a"), "a", true},
		{"exact case", exact("a"), "A", false},
		{"exact ignore case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "AbC"}, IgnoreCase: true}, "aBc", true},
		{"prefix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/a"}}, "/ab", true},
		{"suffix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "/sa/x"}}, "spiffe://td/ns/n/sa/x", true},
		{"contains ignore case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "MID"}, IgnoreCase: true}, "amidst", true},
		{"regex full", regex("^spiffe://[^/]+/ns/foo/sa/[^/]+$"), "spiffe://cluster.local/ns/foo/sa/bar", true},
		{"regex partial is no match", regex("foo"), "foobar", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := CompileStringMatch(tc.sm)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match(tc.in); got != tc.want {
				t.Fatalf("Match(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
