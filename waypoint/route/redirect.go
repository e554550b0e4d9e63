package route

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http/httpguts"
)

// Redirect is a compiled RedirectAction: the route answers with a redirect
// instead of forwarding. Immutable; safe for concurrent use.
type Redirect struct {
	scheme     string // "" keeps the request's
	host       string // "" keeps the request's
	port       uint32 // 0 keeps the request's
	path       string
	hasPath    bool
	prefix     string
	hasPrefix  bool
	stripQuery bool
	status     int
	match      *matcher
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
	routev3.RedirectAction_FOUND:              http.StatusFound,
	routev3.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
	routev3.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
	routev3.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
}

func compileRedirect(a *routev3.RedirectAction, m *matcher) (*Redirect, error) {
	rd := &Redirect{match: m, host: a.GetHostRedirect(), port: a.GetPortRedirect(), stripQuery: a.GetStripQuery()}
	switch s := a.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_SchemeRedirect:
		rd.scheme = lowerASCII(s.SchemeRedirect)
		if rd.scheme == "" || strings.ContainsAny(rd.scheme, ":/?#") {
			return nil, fmt.Errorf("redirect.scheme_redirect %q: invalid", s.SchemeRedirect)
		}
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			rd.scheme = "https"
		}
	}
	if rd.host != "" && (!httpguts.ValidHostHeader(rd.host) || strings.ContainsAny(rd.host, "/?#")) {
		return nil, fmt.Errorf("redirect.host_redirect %q: invalid", rd.host)
	}
	if rd.port > 65535 {
		return nil, fmt.Errorf("redirect.port_redirect %d: out of range", rd.port)
	}
	switch p := a.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		if !strings.HasPrefix(p.PathRedirect, "/") {
			return nil, fmt.Errorf("redirect.path_redirect %q: must start with /", p.PathRedirect)
		}
		rd.path, rd.hasPath = p.PathRedirect, true
	case *routev3.RedirectAction_PrefixRewrite:
		rd.prefix, rd.hasPrefix = p.PrefixRewrite, true
	}
	code, ok := redirectCodes[a.GetResponseCode()]
	if !ok {
		return nil, fmt.Errorf("redirect.response_code %d: unknown", a.GetResponseCode())
	}
	rd.status = code
	return rd, nil
}

// Response returns the redirect status (301, 302, 303, 307 or 308) and the
// Location for request r, built as Envoy's redirect: scheme_redirect or the
// request's scheme; host_redirect or the request's Host (its port dropped
// when port_redirect is set, or when switching between http and https while
// on the other scheme's default port); ":port_redirect"; path_redirect
// (keeping the request's query unless it holds its own or strip_query), or
// prefix_rewrite of the matched prefix, or the request's path.
func (rd *Redirect) Response(r *http.Request) (status int, location string) {
	if rd == nil || r == nil || r.URL == nil {
		return http.StatusInternalServerError, ""
	}
	orig := requestScheme(r)
	scheme := rd.scheme
	if scheme == "" {
		scheme = orig
	}
	host := rd.host
	if host == "" {
		host = requestHost(r.Host, scheme, orig, rd.port != 0)
	}
	if rd.port != 0 {
		host += ":" + strconv.FormatUint(uint64(rd.port), 10)
	}
	return rd.status, scheme + "://" + host + rd.newPath(requestPath(r))
}

func (rd *Redirect) newPath(full string) string {
	path, query := stripQuery(full), ""
	if len(full) > len(path) {
		query = full[len(path):]
	}
	if rd.stripQuery {
		query = ""
	}
	switch {
	case rd.hasPath:
		if strings.Contains(rd.path, "?") {
			return rd.path
		}
		return rd.path + query
	case rd.hasPrefix:
		if n := matchedPathLen(rd.match, full); n >= 0 && n <= len(path) {
			return rd.prefix + path[n:] + query
		}
	}
	return path + query
}

// requestScheme is the scheme the client used: X-Forwarded-Proto when it is
// http or https, else https over TLS, else http.
func requestScheme(r *http.Request) string {
	if p := lowerASCII(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// requestHost drops the port of host when a port_redirect replaces it, or
// when the scheme switches to https from http's :80 (or back from :443).
func requestHost(host, scheme, orig string, newPort bool) string {
	end := strings.LastIndexByte(host, ':')
	if end < 0 || end < strings.LastIndexByte(host, ']') {
		return host
	}
	port := host[end:]
	drop := newPort
	if scheme != orig {
		drop = drop || (scheme == "https" && port == ":80") || (scheme == "http" && port == ":443")
	}
	if drop {
		return host[:end]
	}
	return host
}
