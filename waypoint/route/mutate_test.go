package route

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func TestPrepareRequestRewrite(t *testing.T) {
	tests := []struct {
		name     string
		match    *routev3.RouteMatch
		action   *routev3.RouteAction
		target   string
		wantPath string // :path after rewrite
		wantOrig string // x-envoy-original-path, "" when absent
		wantHost string
	}{
		{name: "prefix rewrite", match: prefix("/api"), action: &routev3.RouteAction{PrefixRewrite: "/v2"},
			target: "/api/users?id=1", wantPath: "/v2/users?id=1", wantOrig: "/api/users?id=1"},
		{name: "prefix rewrite to root", match: sepPrefix("/api"), action: &routev3.RouteAction{PrefixRewrite: "/"},
			target: "/api", wantPath: "/", wantOrig: "/api"},
		{name: "separated prefix rewrite", match: sepPrefix("/api"), action: &routev3.RouteAction{PrefixRewrite: "/new"},
			target: "/api/x", wantPath: "/new/x", wantOrig: "/api/x"},
		{name: "exact path rewrite keeps query", match: exactPath("/old"), action: &routev3.RouteAction{PrefixRewrite: "/new"},
			target: "/old?q=1", wantPath: "/new?q=1", wantOrig: "/old?q=1"},
		{name: "regex rewrite", match: prefix("/"), action: &routev3.RouteAction{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
			Pattern: &matcherv3.RegexMatcher{Regex: "^/service/([^/]+)(/.*)$"}, Substitution: "\\2/instance/\\1$"}},
			target: "/service/foo/v1/api?x=y", wantPath: "/v1/api/instance/foo$?x=y", wantOrig: "/service/foo/v1/api?x=y"},
		{name: "full path replace", match: prefix("/"), action: &routev3.RouteAction{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
			Pattern: &matcherv3.RegexMatcher{Regex: "^/.*$"}, Substitution: "/replaced"}},
			target: "/a/b", wantPath: "/replaced", wantOrig: "/a/b"},
		{name: "host rewrite only", match: prefix("/"), action: &routev3.RouteAction{
			HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "other.example"}},
			target: "/a", wantPath: "/a", wantHost: "other.example"},
		{name: "escaped path preserved", match: prefix("/a%2F"), action: &routev3.RouteAction{PrefixRewrite: "/b%2F"},
			target: "/a%2Fx", wantPath: "/b%2Fx", wantOrig: "/a%2Fx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := table(t, withAction(tc.name, tc.match, tc.action)).Match(req("GET", tc.target))
			if rt == nil {
				t.Fatal("no match")
			}
			r := req("GET", tc.target)
			rt.PrepareRequest(r)
			if got := requestPath(r); got != tc.wantPath {
				t.Errorf(":path %q, want %q", got, tc.wantPath)
			}
			if r.RequestURI != tc.wantPath {
				t.Errorf("RequestURI %q, want %q", r.RequestURI, tc.wantPath)
			}
			if got := r.Header.Get(OriginalPathHeader); got != tc.wantOrig {
				t.Errorf("original path %q, want %q", got, tc.wantOrig)
			}
			wantHost := tc.wantHost
			if wantHost == "" {
				wantHost = "svc.ns.svc.cluster.local"
			}
			if r.Host != wantHost {
				t.Errorf("host %q, want %q", r.Host, wantHost)
			}
		})
	}
}

func TestHeaderMutations(t *testing.T) {
	r := toCluster("h", "c", prefix("/"))
	r.RequestHeadersToRemove = []string{"x-remove"}
	r.RequestHeadersToAdd = []*corev3.HeaderValueOption{
		hvo("x-set", "new", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		hvo("x-append", "two", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		hvo("x-remove", "re-added", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		hvo("x-absent", "kept", corev3.HeaderValueOption_ADD_IF_ABSENT),
		hvo("x-only-if", "no", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
		hvo("x-empty", "", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		hvo("x-pct", "100%%", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
	}
	r.ResponseHeadersToRemove = []string{"server"}
	r.ResponseHeadersToAdd = []*corev3.HeaderValueOption{hvo("x-resp", "1", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)}
	rt := table(t, r).Match(req("GET", "/"))
	q := req("GET", "/", "X-Set", "old", "X-Append", "one", "X-Remove", "gone", "X-Absent", "orig")
	rt.PrepareRequest(q)
	want := http.Header{
		"X-Set":    {"new"},
		"X-Append": {"one", "two"},
		"X-Remove": {"re-added"},
		"X-Absent": {"orig"},
		"X-Pct":    {"100%"},
	}
	for k, v := range want {
		if got := q.Header.Values(k); len(got) != len(v) || (len(v) > 0 && got[len(got)-1] != v[len(v)-1]) || (len(v) > 1 && got[0] != v[0]) {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"X-Only-If", "X-Empty", OriginalPathHeader} {
		if _, ok := q.Header[k]; ok {
			t.Errorf("%s unexpectedly set: %q", k, q.Header.Values(k))
		}
	}
	resp := http.Header{"Server": {"up"}, "X-Resp": {"0", "0"}}
	rt.PrepareResponse(resp)
	if _, ok := resp["Server"]; ok || len(resp.Values("X-Resp")) != 1 || resp.Get("X-Resp") != "1" {
		t.Fatalf("response headers %v", resp)
	}
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		name   string
		match  *routev3.RouteMatch
		rd     *routev3.RedirectAction
		target string
		host   string
		proto  string
		status int
		loc    string
	}{
		{name: "default 301 keeps everything", match: prefix("/"), rd: &routev3.RedirectAction{},
			target: "/a?b=c", host: "h:8080", status: 301, loc: "http://h:8080/a?b=c"},
		{name: "scheme to https drops :80", match: prefix("/"), rd: &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"},
			ResponseCode:           routev3.RedirectAction_FOUND},
			target: "/", host: "h:80", status: 302, loc: "https://h/"},
		{name: "host and port", match: prefix("/"), rd: &routev3.RedirectAction{HostRedirect: "new.example", PortRedirect: 8443,
			ResponseCode: routev3.RedirectAction_PERMANENT_REDIRECT},
			target: "/x", host: "h:80", status: 308, loc: "http://new.example:8443/x"},
		{name: "port only replaces port", match: prefix("/"), rd: &routev3.RedirectAction{PortRedirect: 9000},
			target: "/x", host: "h:80", status: 301, loc: "http://h:9000/x"},
		{name: "ipv6 host port", match: prefix("/"), rd: &routev3.RedirectAction{PortRedirect: 9000},
			target: "/x", host: "[::1]:80", status: 301, loc: "http://[::1]:9000/x"},
		{name: "path redirect keeps query", match: prefix("/"), rd: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"},
			ResponseCode:         routev3.RedirectAction_SEE_OTHER},
			target: "/old?q=1", host: "h", status: 303, loc: "http://h/new?q=1"},
		{name: "path redirect with own query", match: prefix("/"), rd: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new?z=2"},
			ResponseCode:         routev3.RedirectAction_TEMPORARY_REDIRECT},
			target: "/old?q=1", host: "h", status: 307, loc: "http://h/new?z=2"},
		{name: "prefix rewrite", match: prefix("/old"), rd: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"}},
			target: "/old/x?q", host: "h", status: 301, loc: "http://h/new/x?q"},
		{name: "forwarded proto", match: prefix("/"), rd: &routev3.RedirectAction{HostRedirect: "n"},
			target: "/", host: "h", proto: "https", status: 301, loc: "https://n/"},
		{name: "strip query", match: prefix("/"), rd: &routev3.RedirectAction{StripQuery: true},
			target: "/p?q=1", host: "h", status: 301, loc: "http://h/p"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := table(t, &routev3.Route{Name: "r", Match: tc.match, Action: &routev3.Route_Redirect{Redirect: tc.rd}})
			r := req("GET", tc.target)
			r.Host = tc.host
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			rt := tb.Match(r)
			if rt == nil || rt.Redirect == nil || len(rt.Backends) != 0 || rt.Pick(1) != "" {
				t.Fatalf("route %+v", rt)
			}
			status, loc := rt.Redirect.Response(r)
			if status != tc.status || loc != tc.loc {
				t.Fatalf("Response = %d %q, want %d %q", status, loc, tc.status, tc.loc)
			}
		})
	}
}
